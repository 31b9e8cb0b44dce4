"""A token bucket for new xDS streams: istiod's ``PILOT_MAX_REQUESTS_PER_SECOND``.

As istiod does, a new stream waits up to ``max_wait`` seconds for a token and is
refused (``RESOURCE_EXHAUSTED``) past that: a fleet reconnecting together is
spread out, a client opening streams in a tight loop is turned away. Sans-IO
apart from the wait: ``reserve`` says how long a stream must wait, from a clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class StreamRateLimit:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_wait: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_wait = max_wait
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float | None:
        """Take a token: the seconds to wait before using it, or ``None`` (refused, nothing
        taken) when that would be longer than ``max_wait``."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
        if wait > self.max_wait:
            return None
        self._tokens -= 1  # may go negative: later callers wait behind this one
        return wait

    async def acquire(self) -> bool:
        """Wait for a token; False when none comes within ``max_wait``."""
        wait = self.reserve()
        if wait is None:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True
