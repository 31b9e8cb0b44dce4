from __future__ import annotations

from collections.abc import Callable

import pytest

from xds.proto.istio.workload import workload_pb2
from xds.resources import Resource
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
