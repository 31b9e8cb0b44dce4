"""Proto helpers: the fast paths build exactly what the general ones do."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from xds.translate.waypoint.endpoints import host_port
from xds.translate.waypoint.protos import JsonValue, metadata, struct


def by_update(values: dict[str, JsonValue]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"workload": "productpage-v1;bookinfo;productpage;v1;Kubernetes"},
        {"local": "10.0.0.1:9080", "empty": ""},
        {"nested": {"a": "b"}, "flag": True},  # not all strings: the general path
        {"number": 1.5, "text": "x", "none": None, "list": ["a", 1]},
    ],
)
def test_struct_is_what_struct_update_builds(values: dict[str, JsonValue]) -> None:
    built = struct(values)
    assert built == by_update(values)
    assert built.SerializeToString(deterministic=True) == by_update(values).SerializeToString(
        deterministic=True
    )


def test_metadata_has_one_struct_per_namespace() -> None:
    built = metadata({"istio": {"workload": "w"}, "envoy.lb": {"version": "v1"}})
    assert dict(built.filter_metadata) == {
        "istio": by_update({"workload": "w"}),
        "envoy.lb": by_update({"version": "v1"}),
    }


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.244.1.5", "10.244.1.5:9080"),
        ("fd00::5", "[fd00::5]:9080"),
        ("::ffff:10.0.0.1", "[::ffff:10.0.0.1]:9080"),
        ("reviews.bookinfo.svc.cluster.local", "reviews.bookinfo.svc.cluster.local:9080"),
    ],
)
def test_host_port_brackets_ipv6_only(address: str, expected: str) -> None:
    assert host_port(address, 9080) == expected
