"""Debouncing of config events before a rebuild (istiod's PILOT_DEBOUNCE_*).

Events are merged into one batch; the batch is handed on after ``quiet``
seconds without a new event, or ``max_delay`` seconds after its first event,
whichever comes first. Only one batch is processed at a time; events arriving
meanwhile start the next batch. An event that comes after its batch was due (the loop
was busy when the deadline passed: a poll that reads files on the loop) starts the next
batch too, instead of holding that one back: under steady changes polled every ``quiet``
seconds, each poll would otherwise land just after the deadline and hold the batch until
``max_delay``.

Unlike istiod, changes that never pause are not held until ``max_delay``: a Kubernetes
watch delivers a churning cluster's events one by one (~40/s in the churn benchmark), the
quiet period never comes, and every batch waited the full 10 s, so proxies learned of
pods that long after they changed (istio/istio#14349 is the same complaint about
endpoints). A batch is also handed on once it is ``sustained_after`` old: two quiet
periods, so a burst shorter than that (a ``kubectl apply`` of a manifest) still goes out
as one batch, or twice as long as the previous batch took to handle, if that is longer,
so that under sustained change the handler is busy at most about half the time and
batches grow with its cost rather than queueing. Proxies coalesce further where their
streams are slower than the batches (a stream's next push carries everything published
while its previous one was written).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Batch(Generic[T]):
    events: list[T]
    first_event_at: float  # time.monotonic() of the first event
    debounce_seconds: float  # first event -> handed on


class Debouncer(Generic[T]):
    def __init__(
        self,
        handle: Callable[[Batch[T]], Awaitable[None]],
        *,
        quiet: float = 0.1,
        max_delay: float = 10.0,
    ) -> None:
        if quiet < 0 or max_delay < quiet:
            raise ValueError("debounce needs 0 <= quiet <= max_delay")
        self._handle = handle
        self._quiet = quiet
        self._max_delay = max_delay
        self._events: list[T] = []  # the open batch
        self._due: list[T] = []  # closed, to be handed on next
        self._due_first_at = 0.0
        self._first_at = 0.0
        self._last_at = 0.0
        self._arrived = asyncio.Event()
        self._handled_in = 0.0  # how long the previous batch's handler took
        self.batches = 0

    @property
    def sustained_after(self) -> float:
        """The age at which a batch is handed on even though events keep coming."""
        return min(self._max_delay, max(2 * self._quiet, 2 * self._handled_in))

    def add(self, event: T) -> None:
        now = time.monotonic()
        if self._events and now >= self._deadline():
            self._close()
        if not self._events:
            self._first_at = now
        self._events.append(event)
        self._last_at = now
        self._arrived.set()

    def _deadline(self) -> float:
        return min(self._last_at + self._quiet, self._first_at + self.sustained_after)

    def _close(self) -> None:
        """The open batch is due: move it to the one to hand on (merged into it, if that
        one is still waiting for its handler)."""
        if not self._due:
            self._due_first_at = self._first_at
        self._due += self._events
        self._events = []

    @property
    def pending(self) -> int:
        """Events waiting for the next batch."""
        return len(self._due) + len(self._events)

    def discard_pending(self) -> int:
        """Drop the events not yet handed on (a full rebuild already covered them)."""
        dropped = self.pending
        self._due, self._events = [], []
        self._arrived.clear()
        return dropped

    async def run(self) -> None:
        """Process batches until cancelled."""
        while True:
            await self._arrived.wait()
            while not self._due:
                now = time.monotonic()
                deadline = self._deadline()
                if now >= deadline:
                    self._close()
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), deadline - now)
            if not self._due:  # discarded meanwhile
                self._arrived.clear()
                continue
            events, first_at, self._due = self._due, self._due_first_at, []
            if not self._events:
                self._arrived.clear()
            self.batches += 1
            started = time.monotonic()
            await self._handle(Batch(events, first_at, started - first_at))
            self._handled_in = time.monotonic() - started
