"""``xds serve --workers N``: forked workers share the ports and are supervised."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc

from xds.client import DeltaClient
from xds.type_urls import ADDRESS

from ..conftest import REPO
from ..helpers import ZTUNNEL, free_port, http_ready, serve_process, wait_until


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


async def test_two_workers_share_the_ports_and_are_restarted(tmp_path: Path) -> None:
    xds_port, http_port = free_port(), free_port()
    process = await serve_process(xds_port, http_port, "--workers", "2")
    try:
        # Either worker may answer /ready: several answers in a row make it likely that
        # both are ready (as the load test does).
        streak = [0]

        def both_ready() -> bool:
            ready = len(children_of(process.pid)) == 2 and http_ready(http_port)
            streak[0] = streak[0] + 1 if ready else 0
            return streak[0] >= 6

        await wait_until(both_ready, within=30)
        workers = children_of(process.pid)
        # Every connection is served, whichever worker the kernel picks.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            for _ in range(6):
                client = DeltaClient(channel, ZTUNNEL)
                await client.connect({ADDRESS: []})
                assert (await client.next()).resources
                await client.close()
        # A worker that dies is replaced.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        await wait_until(lambda: len(children_of(process.pid) - {victim}) == 2, within=15)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0


# Stop signals at the worst moment, on both sides of the fork: right after os.fork()
# returns, before the parent has recorded its child and before the child has put back the
# default handlers. Neither may be lost (the supervisor would wait for a worker nobody
# stops, as CI once saw).
FORK_THEN_STOP = """
import os, signal, sys, time
from xds.plane import workers

real_fork = os.fork

def fork():
    pid = real_fork()
    os.kill(os.getpid(), signal.SIGTERM)
    return pid

os.fork = fork

def serve(index):
    time.sleep(60)
    return 0

sys.exit(workers.run_workers(1, serve))
"""


async def test_a_stop_signal_at_fork_time_is_not_lost() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FORK_THEN_STOP, cwd=REPO, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
