"""The soak's final check: a proxy's state against what ``xds render`` gives."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import json_format

from loadtest.consistency import (
    Decoder,
    compare,
    expected_from_render,
    first_difference,
    sotw_name,
)
from xds import type_urls
from xds.proto.istio.workload import workload_pb2

ADDRESS, ENDPOINT = type_urls.ADDRESS, type_urls.ENDPOINT


def workload(uid: str, revision: str = "v1", services: dict[str, int] | None = None) -> bytes:
    message = workload_pb2.Workload(uid=uid, name=uid, canonical_revision=revision)
    for name, port in (services or {}).items():
        message.services[name].ports.add(service_port=port, target_port=port)
    return workload_pb2.Address(workload=message).SerializeToString()


def assignment(cluster: str, *ports: int) -> bytes:
    message = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
    group = message.endpoints.add()
    for port in ports:
        group.lb_endpoints.add().endpoint.address.socket_address.port_value = port
    return message.SerializeToString()


def as_json(type_url: str, body: bytes) -> Any:
    return Decoder()(type_url, body)


def expected(type_url: str, **bodies: bytes) -> dict[str, Any]:
    return {name: as_json(type_url, body) for name, body in bodies.items()}


CASES = [
    pytest.param(
        {ADDRESS: {"a": workload("a"), "b": workload("b")}},
        {ADDRESS: expected(ADDRESS, a=workload("a"), b=workload("b"))},
        "",
        id="identical",
    ),
    pytest.param(
        {ADDRESS: {"a": workload("a", services={"x": 80, "y": 90})}},
        # The same map written in another order: different bytes, same resource.
        {ADDRESS: expected(ADDRESS, a=workload("a", services={"y": 90, "x": 80}))},
        "",
        id="map order does not matter",
    ),
    pytest.param(
        {ADDRESS: {"a": workload("a")}},
        {ADDRESS: expected(ADDRESS, a=workload("a"), b=workload("b"))},
        "1 missing Address (b)",
        id="a wildcard resource never received",
    ),
    pytest.param(
        {ADDRESS: {"a": workload("a"), "gone": workload("gone")}},
        {ADDRESS: expected(ADDRESS, a=workload("a"))},
        "1 extra Address (gone)",
        id="a removal never received",
    ),
    pytest.param(
        {ADDRESS: {"a": workload("a", "v1")}},
        {ADDRESS: expected(ADDRESS, a=workload("a", "v2"))},
        "1 different Address (a); first difference: a: .workload.canonicalRevision: "
        "held 'v1' != expected 'v2'",
        id="an update never received",
    ),
    pytest.param(
        {ENDPOINT: {"c1": assignment("c1", 80)}},
        {ENDPOINT: expected(ENDPOINT, c1=assignment("c1", 80), c2=assignment("c2", 80))},
        "",
        id="endpoints are asked for by name: not holding every one is fine",
    ),
    pytest.param(
        {ENDPOINT: {"c1": assignment("c1", 80, 81)}},
        {ENDPOINT: expected(ENDPOINT, c1=assignment("c1", 81, 80))},
        "1 different ClusterLoadAssignment (c1); first difference: c1: "
        ".endpoints[0].lbEndpoints: the same 2 items in another order",
        id="endpoint order counts",
    ),
    pytest.param(
        {ENDPOINT: {"c1": assignment("c1", 80)}},
        {ENDPOINT: expected(ENDPOINT, c1=assignment("c1", 80, 81))},
        "1 different ClusterLoadAssignment (c1); first difference: c1: "
        ".endpoints[0].lbEndpoints: 1 items held, 2 expected; only held: []; only expected: "
        "[{'endpoint': {'address': {'socketAddress': {'portValue': 81}}}}]",
        id="a missing endpoint",
    ),
]


@pytest.mark.parametrize(("held", "wanted", "description"), CASES)
def test_compare(
    held: dict[str, dict[str, bytes]], wanted: dict[str, dict[str, Any]], description: str
) -> None:
    divergence = compare(held, wanted, Decoder(), types=[ADDRESS, ENDPOINT])
    assert bool(divergence) == bool(description)
    assert divergence.describe() == description


def test_only_the_types_asked_for_are_compared() -> None:
    held = {ADDRESS: {"a": workload("a")}}
    wanted = {ADDRESS: expected(ADDRESS, a=workload("a"), b=workload("b"))}
    assert not compare(held, wanted, Decoder(), types=[ENDPOINT])


def test_expected_state_is_keyed_by_name_as_render_prints_it() -> None:
    resource = json_format.MessageToDict(workload_pb2.Workload(uid="a"))
    rendered = {ADDRESS: [{"name": "a", "resource": resource}]}
    assert expected_from_render(rendered) == {ADDRESS: {"a": resource}}


def test_sotw_resources_are_named_by_their_own_name_field() -> None:
    assert sotw_name(ENDPOINT, assignment("outbound|80||x")) == "outbound|80||x"


def test_first_difference_names_the_path() -> None:
    assert first_difference({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == (
        ".a.b[1]: held 2 != expected 3"
    )
    assert first_difference({"a": 1}, {}) == ".a: held 1 != expected None"
