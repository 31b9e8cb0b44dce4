"""Fan-out backpressure: a scope's next commit reaches its streams once the previous one
has been written to all of them.

Without it, under sustained change (a commit every ~0.2 s) a stream that has written its
push gets the next commit at once, however many of its neighbours are still being
written to: every stream gets every commit, and a serving process that cannot keep up
spends its time on ever more small pushes, its clients on as many ACKs. Woken only once
the scope's fan-out is done, each stream sends the commits that came meanwhile as one
push (built once for all of them: ``delta.SharedUpdates``). One slow client must not hold
the others up for long: a hold ends after ``max_hold`` seconds in any case. A change that
comes while nothing is being written, the usual case, is delivered at once.

Only the wake-up is held, never what changed: each stream notes every commit at once, so
that whatever push it makes (one queued already, say) covers everything the store holds
by then. A push that left out a commit its stream was not told about yet would let the
stream believe it holds what it was never sent.

Istiod bounds its pushes in flight the same way (PILOT_PUSH_THROTTLE); the load test's
floor does exactly this.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from xds.serving.store import Touched, Watcher

MAX_HOLD = 0.5  # seconds


Wake = Callable[[], None]


@dataclass
class _Scope:
    # Streams not done with what they were woken for, since when.
    writing: dict[Hashable, float] = field(default_factory=dict)
    # The commit whose watchers are being called: its streams woken now (True) or later.
    waking: bool | None = None
    held: dict[Hashable, Wake] = field(default_factory=dict)  # streams to wake later
    timer: asyncio.TimerHandle | None = None


class FanOutGate:
    """Sits between the store's watchers and the streams; streams say when they have
    written what they were woken for (``pushed``) and when they end (``closed``)."""

    def __init__(self, max_hold: float = MAX_HOLD, clock: Callable[[], float] = time.monotonic):
        self.max_hold = max_hold
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}

    def watcher(self, scope: str, stream: Hashable, note: Watcher, wake: Wake) -> Watcher:
        """The store watcher of ``stream`` for ``scope``: ``note`` takes each change at
        once, ``wake`` asks the stream to push (now, or when the fan-out is done)."""

        def watch(change: Touched, origin: float) -> None:
            note(change, origin)
            self._touched(scope, stream, wake)

        return watch

    def pushed(self, stream: Hashable) -> None:
        """``stream`` has written everything it was told (or had nothing to write)."""
        for name, scope in list(self._scopes.items()):
            if scope.writing.pop(stream, None) is not None and not scope.writing and scope.held:
                self._release(name)

    def closed(self, stream: Hashable) -> None:
        for scope in self._scopes.values():
            scope.held.pop(stream, None)
        self.pushed(stream)

    def holding(self, scope: str) -> int:
        """Streams whose wake-up is held back in ``scope``."""
        state = self._scopes.get(scope)
        return 0 if state is None else len(state.held)

    def _touched(self, name: str, stream: Hashable, wake: Wake) -> None:
        scope = self._scopes.setdefault(name, _Scope())
        if scope.waking is None:
            # Every watcher of a commit is called before the event loop runs anything
            # else: one decision for all of them.
            scope.waking = not scope.held and not self._busy(scope)
            asyncio.get_running_loop().call_soon(self._decided, name)
        if scope.waking:
            scope.writing[stream] = self._clock()
            wake()
            return
        if not scope.held:
            scope.timer = asyncio.get_running_loop().call_later(self.max_hold, self._release, name)
        scope.held[stream] = wake

    def _busy(self, scope: _Scope) -> bool:
        """Some stream is still writing what it was woken for less than ``max_hold`` ago
        (one that takes longer no longer holds the others up)."""
        stale = self._clock() - self.max_hold
        for stream in [s for s, since in scope.writing.items() if since < stale]:
            del scope.writing[stream]
        return bool(scope.writing)

    def _decided(self, name: str) -> None:
        scope = self._scopes.get(name)
        if scope is not None:
            scope.waking = None

    def _release(self, name: str) -> None:
        scope = self._scopes.get(name)
        if scope is None:
            return
        if scope.timer is not None:
            scope.timer.cancel()
            scope.timer = None
        held, scope.held = scope.held, {}
        now = self._clock()
        for stream, wake in held.items():
            scope.writing[stream] = now
            wake()
