"""HeapTrimmer: freed heap pages go back to the system (glibc only)."""

from __future__ import annotations

import asyncio
import os

import pytest

from xds.plane.heap import HeapTrimmer
from xds.tasks import cancel_and_wait


def trimmer(min_free: int) -> HeapTrimmer:
    found = HeapTrimmer.for_this_process(min_free)
    if found is None:
        pytest.skip("not glibc 2.33+")
    return found


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_trim_returns_the_pages_of_freed_buffers() -> None:
    heap = trimmer(min_free=1 << 20)
    # 100 MB in buffers below the mmap threshold (so in the heap), then one more that
    # keeps the heap's top in use: freeing the rest cannot shrink the heap by itself.
    buffers = [bytes(100_000) for _ in range(1000)]
    top = bytes(100_000)
    del buffers
    assert heap.free_bytes() >= 90_000_000
    before = resident_bytes()
    assert heap.trim()
    assert before - resident_bytes() >= 50_000_000
    assert not heap.trim()  # nothing freed since
    # The same memory used and freed again is resident again: trimmed again.
    buffers = [bytes(100_000) for _ in range(1000)]
    heap.trim()  # sees the heap's free memory in use again
    del buffers
    before = resident_bytes()
    assert heap.trim()
    assert before - resident_bytes() >= 50_000_000
    assert len(top) == 100_000


def test_nothing_is_trimmed_while_little_is_free() -> None:
    heap = trimmer(min_free=1 << 62)
    assert not heap.trim()


async def test_it_trims_every_interval() -> None:
    heap = trimmer(min_free=0)
    calls = 0

    def trim() -> bool:
        nonlocal calls
        calls += 1
        return False

    heap.trim = trim  # type: ignore[method-assign]
    task = asyncio.create_task(heap.run(interval=0.01))
    await asyncio.sleep(0.2)
    await cancel_and_wait(task)
    assert calls >= 3
