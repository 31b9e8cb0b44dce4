"""Stopping background tasks without losing our own cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for it to end, whatever it ends with.

    ``suppress(CancelledError)`` around ``await task`` would also swallow a
    cancellation aimed at *us* that arrives while we wait, and the caller would
    then run on (a task asked to stop that never does). So a CancelledError is
    only absorbed when nobody is cancelling the current task.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        pass


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel every task, then wait for each (see :func:`cancel_and_wait`)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        await cancel_and_wait(task)
