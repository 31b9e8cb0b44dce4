"""Fixtures shared by the end-to-end tests: a control plane on free loopback ports."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from xds.plane.app import ControlPlane, ServeOptions

from .kube.cluster import Cluster, running_cluster

REPO = Path(__file__).resolve().parents[1]

# Every line the control planes of this test session log (in-process ones at info and
# above, as operators run them; and the logs of `xds` processes that tests hand to
# `scan_output`) is scanned for key and token material; a match fails the session.
_SECRETS = re.compile(r"PRIVATE KEY|Bearer [A-Za-z0-9._~+/-]{16,}|eyJ[A-Za-z0-9_-]{16,}\.")


class _SessionLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        from xds.logs import LineFormatter

        self.setFormatter(LineFormatter())
        self.leaks: list[str] = []
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.scan(self.format(record))

    def scan(self, line: str) -> None:
        self.lines += 1
        if _SECRETS.search(line):
            self.leaks.append(line[:300])


_session_log = _SessionLog()


def scan_output(text: str) -> None:
    """Add the log of an ``xds`` process a test ran to the session's secret scan."""
    for line in text.splitlines():
        _session_log.scan(line)


_process_logs: list[Path] = []
_process_log_dir: list[Path] = []


def process_log(name: str) -> Path:
    """A file for a subprocess's log; it is scanned with the session's logs at the end."""
    if not _process_log_dir:
        _process_log_dir.append(Path(tempfile.mkdtemp(prefix="xds-test-logs-")))
    path = _process_log_dir[0] / f"{len(_process_logs):04d}-{name}.log"
    _process_logs.append(path)
    return path


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger("xds")
    root.addHandler(_session_log)
    if root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # what `xds serve` logs by default


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger("xds").removeHandler(_session_log)
    for path in _process_logs:
        if path.exists():
            scan_output(path.read_text(errors="replace"))
    for directory in _process_log_dir:
        shutil.rmtree(directory, ignore_errors=True)
    if _session_log.leaks:
        print(
            f"\nkey or token material in {len(_session_log.leaks)} of {_session_log.lines} "
            "logged lines:\n" + "\n".join(_session_log.leaks[:10])
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@asynccontextmanager
async def running_control_plane(
    config_dir: Path | None, **overrides: Any
) -> AsyncIterator[ControlPlane]:
    """A ControlPlane in this event loop, on ephemeral loopback ports, ready to serve."""
    options = ServeOptions(
        config_dir=config_dir,
        listen_host="127.0.0.1",
        xds_port=-1,
        secure_port=0,
        http_port=-1,
        poll_interval=0.05,
        debounce_after=0.05,
        debounce_max=1.0,
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    plane = ControlPlane(options)
    await plane.start()
    try:
        yield plane
    finally:
        await plane.stop(grace=0.1)


@pytest.fixture
def failing_disk(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """While set, every read of a config directory fails (the file source then fails)."""
    from xds.sources import files

    real = files._read_tree
    failing = asyncio.Event()

    def read_tree(*args: Any) -> Any:
        if failing.is_set():
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(files, "_read_tree", read_tree)
    return failing


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled demo mesh."""
    from xds.sources.demo import demo_directory

    target = tmp_path / "mesh"
    shutil.copytree(demo_directory(), target)
    return target


@pytest.fixture
async def channel_to() -> AsyncIterator[Callable[[int], grpc.aio.Channel]]:
    """Plaintext channels to loopback ports, closed after the test."""
    channels: list[grpc.aio.Channel] = []

    def make(port: int) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        await channel.close()


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A real etcd + kube-apiserver with the Istio and Gateway API CRDs, for the session.

    Built from Go modules on first use (tests/kube/build.sh, cached per machine)."""
    yield from running_cluster(tmp_path_factory.mktemp("kube"))
