"""A keyed work queue for controllers that write to the cluster (client-go's, reduced).

A key is queued at most once at a time; one worker reconciles keys in order;
a failed reconcile is retried later with backoff, so a key that keeps failing
never blocks the others and never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from xds.sources.kubernetes.api import ApiError
from xds.sources.kubernetes.reflector import Backoff

log = logging.getLogger("xds.kube")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        reconcile: Callable[[K], Awaitable[None]],
        *,
        what: str,
        describe: Callable[[K], Mapping[str, Any]] = lambda key: {"key": str(key)},
        backoff: Backoff | None = None,
    ) -> None:
        """``what`` names the work in logs ("write the root certificate ConfigMap");
        ``describe`` turns a key into log fields."""
        self._reconcile = reconcile
        self._what = what
        self._describe = describe
        self._backoff = backoff or Backoff()
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._failures: dict[K, int] = {}

    def add(self, key: K) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return len(self._queued)

    async def run(self) -> None:
        """Reconcile queued keys until cancelled."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self._reconcile(key)
                self._failures.pop(key, None)
            except Exception as error:  # whatever it is, retry: never stop the worker
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                log.warning(
                    "cannot %s; retrying",
                    self._what,
                    exc_info=not isinstance(error, ApiError),
                    extra={**self._describe(key), "reason": str(error), "failures": failures},
                )
                asyncio.get_running_loop().call_later(self._backoff.delay(failures), self.add, key)
