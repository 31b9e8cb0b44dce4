"""Debouncing: quiet period, maximum delay, one batch at a time."""

from __future__ import annotations

import asyncio
import time

from xds.plane.debounce import Batch, Debouncer


async def test_rapid_events_coalesce_into_one_batch() -> None:
    batches: list[Batch[int]] = []

    async def handle(batch: Batch[int]) -> None:
        batches.append(batch)

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
    batches: list[Batch[int]] = []

    async def handle(batch: Batch[int]) -> None:
        batches.append(batch)

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
