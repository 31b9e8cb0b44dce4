"""Debouncing: quiet period, maximum delay, the cap under sustained change, one batch at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from xds.plane.debounce import Batch, Debouncer


def collecting() -> tuple[list[Batch[int]], Callable[[Batch[int]], Awaitable[None]]]:
    """The batches handed on, and the handler that records them."""
    batches: list[Batch[int]] = []

    async def handle(batch: Batch[int]) -> None:
        batches.append(batch)

    return batches, handle


async def test_a_burst_shorter_than_two_quiet_periods_is_one_batch() -> None:
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.1, max_delay=5)
    runner = asyncio.create_task(debouncer.run())
    for i in range(50):  # ~50 ms of events
        debouncer.add(i)
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.3)
    runner.cancel()
    assert len(batches) == 1
    assert batches[0].events == list(range(50))


async def add_every(debouncer: Debouncer[int], interval: float, seconds: float) -> int:
    """Events every ``interval`` for ``seconds`` (never quiet for longer): how many."""
    start, count = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        debouncer.add(count)
        count += 1
        await asyncio.sleep(interval)
    return count


@pytest.mark.parametrize(
    ("max_delay", "cap"),
    [
        (0.07, 0.07),  # below two quiet periods: the max wins
        # Changes that never pause (a watch delivering a churning cluster's events one by
        # one): the quiet period never comes, yet no batch waits for max_delay.
        (10, 0.1),
    ],
)
async def test_a_stream_of_events_goes_out_in_batches_of_bounded_age(
    max_delay: float, cap: float
) -> None:
    batches, handle = collecting()
    debouncer = Debouncer(handle, quiet=0.05, max_delay=max_delay)
    assert debouncer.sustained_after == cap
    runner = asyncio.create_task(debouncer.run())
    count = await add_every(debouncer, 0.01, 0.6)
    await asyncio.sleep(0.15)
    runner.cancel()
    assert 4 <= len(batches) <= 10
    assert all(b.debounce_seconds < 2 * cap for b in batches)
    assert [e for b in batches for e in b.events] == list(range(count))


async def test_a_slow_handler_lengthens_batches_under_sustained_change() -> None:
    """Batches then grow with the handler's cost: it is busy about half the time, and
    what arrives meanwhile waits in one batch instead of a queue of them."""
    handled: list[Batch[int]] = []

    async def slow(batch: Batch[int]) -> None:
        handled.append(batch)
        await asyncio.sleep(0.1)

    debouncer = Debouncer(slow, quiet=0.03, max_delay=10)
    runner = asyncio.create_task(debouncer.run())
    count = await add_every(debouncer, 0.01, 1.0)
    await asyncio.sleep(0.5)
    runner.cancel()
    assert 0.19 <= debouncer.sustained_after < 0.5
    assert 3 <= len(handled) <= 8  # one per ~0.2 s (~6), not one per handler run (~10)
    assert all(b.debounce_seconds < 0.4 for b in handled)
    assert [e for b in handled for e in b.events] == list(range(count))


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
