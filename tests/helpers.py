"""Small helpers for asynchronous tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any


async def wait_until(predicate: Callable[[], object], within: float = 5.0) -> None:
    """Poll ``predicate`` until it is truthy; TimeoutError after ``within`` seconds.

    Polling is deliberate: the conditions are observations of another party
    (a server, a proxy), not events this test could await."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[object]], within: float = 5.0) -> None:
    """``wait_until`` for checks that must not block the event loop (e.g. HTTP calls
    to a server running in this loop, made through a thread)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


ZTUNNEL = "ztunnel~10.244.1.2~ztunnel-a.istio-system~istio-system.svc.cluster.local"
"""A ztunnel's node id, as ztunnel sends it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def xds(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``xds`` command in a process of its own; its log joins the secret scan."""
    from .conftest import REPO, scan_output

    result = subprocess.run(
        [sys.executable, "-m", "xds", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    scan_output(result.stderr)
    return result


def http_ready(port: int) -> bool:
    """Whether a control plane's monitoring port answers /ready with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


async def serve_process(
    xds_port: int,
    http_port: int,
    *args: str,
    stderr: Any = None,
    wrapper: Sequence[str] = (),
) -> asyncio.subprocess.Process:
    """``xds serve`` in a process of its own on loopback: plaintext xDS and HTTP ports, no
    TLS port; ``args`` add to that (``--config DIR``, ``--workers 2``, ...); ``wrapper``
    runs it under another command. Its log goes to ``stderr`` (default: a file that joins
    the session's secret scan)."""
    from .conftest import REPO, process_log

    if stderr is None:
        with process_log("xds-serve").open("wb") as log:
            return await serve_process(
                xds_port, http_port, *args, stderr=log.fileno(), wrapper=wrapper
            )
    return await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        "xds",
        "serve",
        "--xds-port",
        str(xds_port),
        "--secure-port",
        "0",
        "--http-port",
        str(http_port),
        "--listen-address",
        "127.0.0.1",
        *args,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=stderr,
    )


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (from /proc), parents first."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process under it at once, as a crash of the machine or
    an OOM kill of the container would: none gets to close anything cleanly."""
    for victim in reversed(process_tree(pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
