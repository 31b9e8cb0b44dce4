"""Stopping a task must never eat a cancellation aimed at the one that stops it."""

from __future__ import annotations

import asyncio

import pytest

from xds.tasks import cancel_all, cancel_and_wait


async def _slow_to_stop(stopped: list[str]) -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)  # cleanup that takes a while, as a stream's close does
        stopped.append("inner")
        raise


async def _failing() -> None:
    raise RuntimeError("its own failure")


async def test_the_task_is_stopped_and_its_end_absorbed() -> None:
    stopped: list[str] = []
    inner = asyncio.create_task(_slow_to_stop(stopped))
    await asyncio.sleep(0)
    await cancel_and_wait(inner)
    assert inner.cancelled() and stopped == ["inner"]
    failed = asyncio.create_task(_failing())
    await asyncio.sleep(0)
    await cancel_and_wait(failed)  # it had already failed: not our error to raise


async def test_a_cancellation_of_the_waiter_is_not_swallowed() -> None:
    stopped: list[str] = []
    inner = asyncio.create_task(_slow_to_stop(stopped))
    went_on: list[str] = []

    async def stopper() -> None:
        await cancel_and_wait(inner)
        went_on.append("after")  # must not run: the stopper itself was cancelled

    outer = asyncio.create_task(stopper())
    await asyncio.sleep(0.01)  # the stopper now waits for the inner task's cleanup
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert went_on == []
    assert inner.done()


async def test_cancel_all_stops_every_task() -> None:
    stopped: list[str] = []
    tasks = [asyncio.create_task(_slow_to_stop(stopped)) for _ in range(3)]
    await asyncio.sleep(0)
    await cancel_all(tasks)
    assert all(task.cancelled() for task in tasks) and stopped == ["inner"] * 3
