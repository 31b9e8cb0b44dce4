"""The control plane's supervision of its config source, in process."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xds.model.core import Pod
from xds.plane.app import SOURCE_FAILURES

from ..conftest import running_control_plane
from ..helpers import eventually


def ready_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2
        )
        return int(reply.status)


async def test_a_failing_source_makes_us_unready_and_is_restarted(
    demo_copy: Path, failing_disk: asyncio.Event
) -> None:
    failing = failing_disk
    before = SOURCE_FAILURES._value.get()
    async with running_control_plane(demo_copy) as plane:
        assert await asyncio.to_thread(ready_status, plane.ports.http) == 200
        failing.set()

        async def unready() -> bool:
            return (
                await asyncio.to_thread(ready_status, plane.ports.http) == 503
                and await health(plane.ports.xds) == health_pb2.HealthCheckResponse.NOT_SERVING
            )

        await eventually(unready, within=5)
        assert SOURCE_FAILURES._value.get() > before
        failing.clear()

        async def ready_again() -> bool:
            return (
                await asyncio.to_thread(ready_status, plane.ports.http) == 200
                and await health(plane.ports.xds) == health_pb2.HealthCheckResponse.SERVING
            )

        await eventually(ready_again, within=10)
        # The restarted source applies edits.
        (demo_copy / "21-details.yaml").unlink()

        def details_gone() -> bool:
            return not any(pod.name.startswith("details") for pod in plane.mesh.objects(Pod))

        await eventually(lambda: asyncio.to_thread(details_gone), within=5)
