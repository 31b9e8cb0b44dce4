"""The new-stream token bucket: bursts, waits, refusals (a fake clock)."""

from __future__ import annotations

import pytest

from xds.serving.ratelimit import StreamRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_streams_wait_their_turn_then_are_refused() -> None:
    clock = Clock()
    limit = StreamRateLimit(rate=10, burst=3, max_wait=0.25, clock=clock)
    assert [limit.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # Out of tokens: the next ones wait 0.1 s, 0.2 s... up to max_wait.
    assert limit.reserve() == pytest.approx(0.1)
    assert limit.reserve() == pytest.approx(0.2)
    assert limit.reserve() is None  # 0.3 s > max_wait: refused, nothing taken
    clock.now = 1.0  # refilled (up to the burst, not beyond)
    assert [limit.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.reserve() == pytest.approx(0.1)


def test_settings_must_make_sense() -> None:
    with pytest.raises(ValueError):
        StreamRateLimit(rate=0, burst=1)
    with pytest.raises(ValueError):
        StreamRateLimit(rate=1, burst=0)
