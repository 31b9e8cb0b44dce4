"""``xds serve --workers N``: a config process and N serving processes sharing the ports,
supervised; ``--single-process``: one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient
from xds.plane.workers import default_workers
from xds.type_urls import ADDRESS

from ..conftest import REPO
from ..e2e.support import PRODUCTPAGE, edit
from ..helpers import ZTUNNEL, free_port, http_ready, serve_process, wait_until


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def role_of(pid: int) -> str:
    """ "config" or "serving", from what the process has open: only serving processes
    listen on TCP ports."""
    inodes = {
        line.split()[9]
        for table in ("tcp", "tcp6")
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        if line.split()[3] == "0A"  # LISTEN
    }
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return "serving"
    return "config"


def commit_socket(pid: int) -> Path:
    """The path of the Unix socket process ``pid`` listens on (from /proc/net/unix)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 8 and fields[6] in inodes and fields[3] == "00010000":  # listening
            return Path(fields[7])
    raise AssertionError(f"process {pid} listens on no Unix socket")


def _listens_on_unix(pid: int) -> bool:
    with contextlib.suppress(AssertionError):
        return bool(commit_socket(pid))
    return False


def listeners(port: int) -> int:
    """How many sockets listen on a TCP port (one per process with SO_REUSEPORT)."""
    return sum(
        1
        for table in ("tcp", "tcp6")
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        if line.split()[3] == "0A" and int(line.split()[1].rsplit(":", 1)[1], 16) == port
    )


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def move_productpage(mesh: Path, old: str, new: str) -> None:
    edit(
        mesh / "20-productpage.yaml",
        f"podIP: {old}",
        f"podIP: {new}",
        (f"- ip: {old}", f"- ip: {new}"),
    )


async def test_a_config_process_feeds_two_serving_processes_and_each_is_restarted(
    demo_copy: Path,
) -> None:
    xds_port, http_port = free_port(), free_port()
    process = await serve_process(xds_port, http_port, "--workers", "2", "--config", str(demo_copy))
    try:
        # Either serving process may answer /ready: several answers in a row make it
        # likely that both are ready (as the load test does).
        streak = [0]

        def all_ready() -> bool:
            ready = len(children_of(process.pid)) == 3 and http_ready(http_port)
            streak[0] = streak[0] + 1 if ready else 0
            return streak[0] >= 6

        await wait_until(all_ready, within=30)
        roles = {pid: role_of(pid) for pid in children_of(process.pid)}
        assert sorted(roles.values()) == ["config", "serving", "serving"]
        [config] = [pid for pid, role in roles.items() if role == "config"]
        # The commit stream carries the whole model (Secrets' credentials included): only
        # this user may reach it.
        socket = commit_socket(config)
        assert socket.stat().st_mode & 0o777 == 0o600
        assert socket.parent.stat().st_mode & 0o777 == 0o700
        # Every connection is served, whichever serving process the kernel picks, and
        # every one of them gets a change made once, in the config process.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            clients = []
            for _ in range(6):
                client = DeltaClient(channel, ZTUNNEL)
                await client.connect({ADDRESS: []})
                assert (await client.next()).resources
                clients.append(client)
            move_productpage(demo_copy, "10.244.1.10", "10.244.1.99")
            for client in clients:
                assert [r.name for r in (await client.next(within=10)).resources] == [PRODUCTPAGE]

            # The config process has no port: a serving process reports its debounce.
            metrics = await asyncio.to_thread(scrape, http_port)
            [count] = re.findall(r"^pilot_debounce_time_count (\S+)$", metrics, re.MULTILINE)
            assert float(count) >= 1

            # The config process dies: streams stay, a new one takes over, and changes
            # flow again.
            os.kill(config, signal.SIGKILL)
            await wait_until(lambda: len(children_of(process.pid) - {config}) == 3, within=15)
            move_productpage(demo_copy, "10.244.1.99", "10.244.1.98")
            for client in clients:
                assert [r.name for r in (await client.next(within=15)).resources] == [PRODUCTPAGE]
            for client in clients:
                await client.close()

        # A serving process that dies is replaced, and its replacement listens only once
        # it holds the config: until then the kernel must not hand it connections (or
        # /ready probes) that its sibling serves. The config process is held stopped so
        # that the replacement waits for its snapshot.
        [config] = [pid for pid in children_of(process.pid) if _listens_on_unix(pid)]
        victim = min(pid for pid, role in roles.items() if role == "serving")
        os.kill(config, signal.SIGSTOP)
        try:
            os.kill(victim, signal.SIGKILL)
            await wait_until(lambda: len(children_of(process.pid) - {victim}) == 3, within=15)
            for _ in range(10):
                assert listeners(xds_port) == listeners(http_port) == 1
                assert http_ready(http_port)
                await asyncio.sleep(0.1)
        finally:
            os.kill(config, signal.SIGCONT)
        await wait_until(lambda: listeners(xds_port) == listeners(http_port) == 2, within=15)
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def test_the_processes_end_with_a_killed_supervisor() -> None:
    xds_port, http_port = free_port(), free_port()
    process = await serve_process(xds_port, http_port, "--workers", "1")
    try:
        await wait_until(
            lambda: len(children_of(process.pid)) == 2 and http_ready(http_port), within=30
        )
        children = children_of(process.pid)
        process.kill()  # no chance to stop them itself
        await process.wait()
        await wait_until(lambda: all(gone(pid) for pid in children), within=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_single_process_serves_alone() -> None:
    xds_port, http_port = free_port(), free_port()
    process = await serve_process(xds_port, http_port, "--single-process")
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
        assert children_of(process.pid) == set()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = DeltaClient(channel, ZTUNNEL)
            await client.connect({ADDRESS: []})
            assert (await client.next()).resources
            await client.close()
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


@pytest.mark.parametrize(
    ("files", "cpus", "workers"),
    [
        ({}, 4, 4),  # no cgroup files: the affinity
        ({"cpu.max": "max 100000\n"}, 4, 4),  # cgroup v2, no limit
        ({"cpu.max": "150000 100000\n"}, 4, 2),  # a limit of 1.5 CPUs: two
        ({"cpu.max": "100000 100000\n"}, 4, 0),  # one CPU: a single process
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 8, 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 2, 2),  # v1, none
        ({"cpu.max": "garbage"}, 2, 2),  # unreadable: the affinity
        ({"cpu.max": "100000 0"}, 2, 2),  # nonsense: the affinity
        ({}, 64, 8),  # many CPUs: at most eight unless --workers says more
    ],
)
def test_the_default_is_one_serving_process_per_usable_cpu(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    cpus: int,
    workers: int,
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert default_workers(tmp_path) == workers
