"""Debouncing: quiet period, maximum delay, one batch at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from xds.plane.debounce import Batch, Debouncer


def collecting() -> tuple[list[Batch[int]], Callable[[Batch[int]], Awaitable[None]]]:
    """The batches handed on, and the handler that records them."""
    batches: list[Batch[int]] = []

    async def handle(batch: Batch[int]) -> None:
        batches.append(batch)

    return batches, handle


async def test_rapid_events_coalesce_into_one_batch() -> None:
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.05, max_delay=5)
    runner = asyncio.create_task(debouncer.run())
    for i in range(50):
        debouncer.add(i)
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.2)
    runner.cancel()
    assert len(batches) == 1
    assert batches[0].events == list(range(50))


async def test_max_delay_bounds_a_stream_of_events() -> None:
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.05, max_delay=0.15)
    runner = asyncio.create_task(debouncer.run())
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 0.5:  # never quiet for 50 ms
        debouncer.add(i)
        i += 1
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    runner.cancel()
    assert 3 <= len(batches) <= 5
    assert all(b.debounce_seconds < 0.3 for b in batches)
    assert sum(len(b.events) for b in batches) == i


async def test_events_during_a_slow_batch_start_the_next() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def handle(batch: Batch[int]) -> None:
        seen.append(batch.events)
        if len(seen) == 1:
            await release.wait()

    debouncer = Debouncer(handle, quiet=0.01, max_delay=1)
    runner = asyncio.create_task(debouncer.run())
    debouncer.add(1)
    await asyncio.sleep(0.05)
    debouncer.add(2)
    debouncer.add(3)
    await asyncio.sleep(0.05)
    assert seen == [[1]]
    release.set()
    await asyncio.sleep(0.05)
    runner.cancel()
    assert seen == [[1], [2, 3]]


def block_the_loop(seconds: float) -> None:
    """What code that works on the loop without awaiting does to its timers."""
    time.sleep(seconds)


async def test_an_event_after_the_deadline_starts_the_next_batch() -> None:
    """The loop was busy when the quiet period ended (a poll reading files on it): the
    event that busy code adds belongs to the next batch, it does not hold this one."""
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.05, max_delay=5)
    runner = asyncio.create_task(debouncer.run())
    debouncer.add(1)
    await asyncio.sleep(0)  # the debouncer waits for the quiet period
    block_the_loop(0.08)  # past the deadline
    debouncer.add(2)
    await asyncio.sleep(0.2)
    runner.cancel()
    assert [b.events for b in batches] == [[1], [2]]


async def test_a_steady_poll_rhythm_is_not_held_until_max_delay() -> None:
    """A poll every ``quiet`` seconds that blocks the loop while it reads: each poll's
    event lands just past the deadline. Batches still go out about once per poll."""
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.05, max_delay=5)
    runner = asyncio.create_task(debouncer.run())
    for i in range(8):
        await asyncio.sleep(0.05)
        block_the_loop(0.01)  # the poll's read, on the loop
        debouncer.add(i)
    await asyncio.sleep(0.2)
    runner.cancel()
    assert len(batches) >= 4
    assert max(b.debounce_seconds for b in batches) < 0.5
    assert [e for b in batches for e in b.events] == list(range(8))


async def test_discarded_events_are_not_handed_on() -> None:
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.02, max_delay=5)
    runner = asyncio.create_task(debouncer.run())
    debouncer.add(1)
    await asyncio.sleep(0)
    assert debouncer.discard_pending() == 1
    await asyncio.sleep(0.1)
    debouncer.add(2)
    await asyncio.sleep(0.1)
    runner.cancel()
    assert [b.events for b in batches] == [[2]]
