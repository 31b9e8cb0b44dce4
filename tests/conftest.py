"""Fixtures shared by the end-to-end tests: a control plane on free loopback ports."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from xds.app import ControlPlane, ServeOptions

from .kube.cluster import Cluster, running_cluster

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_control_plane(config_dir: Path | None,
                                **overrides: Any) -> AsyncIterator[ControlPlane]:
    """A ControlPlane in this event loop, on ephemeral loopback ports, ready to serve."""
    options = ServeOptions(config_dir=config_dir, listen_host="127.0.0.1", xds_port=-1,
                           secure_port=0, http_port=-1, poll_interval=0.05,
                           debounce_after=0.05, debounce_max=1.0)
    for key, value in overrides.items():
        setattr(options, key, value)
    plane = ControlPlane(options)
    await plane.start()
    try:
        yield plane
    finally:
        await plane.stop(grace=0.1)


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
