"""Helpers of the serving tests: resources, a binder, a raw HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from xds.proto.istio.workload import workload_pb2
from xds.resources import Resource
from xds.serving.ads import Binding
from xds.serving.node import ProxyNode
from xds.serving.session import allow_all
from xds.type_urls import ADDRESS


def workload(name: str, ip: bytes = b"\x0a\x00\x00\x01", *, revision: str = "") -> Resource:
    uid = f"Kubernetes//Pod/default/{name}"
    message = workload_pb2.Address(
        workload=workload_pb2.Workload(
            uid=uid, name=name, namespace="default", addresses=[ip], canonical_revision=revision
        )
    )
    return Resource.from_message(ADDRESS, uid, message, aliases=[f"/{_ip(ip)}"])


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


@pytest.fixture
def make_workload() -> Callable[..., Resource]:
    return workload


ZTUNNEL = "ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local"


async def bind(node: ProxyNode, caller: object) -> Binding:
    return Binding("s", allow_all)


async def fetch(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body
