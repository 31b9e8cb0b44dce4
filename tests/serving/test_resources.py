"""The hand-spliced response bytes must decode with the real Envoy protos."""

from envoy.service.discovery.v3 import discovery_pb2

from xds.proto.istio.workload import workload_pb2
from xds.resources import Resource
from xds.serving.delta import DeltaResponse
from xds.serving.sotw import SotwResponse
from xds.type_urls import ADDRESS

from .conftest import workload


def test_delta_response_decodes_with_envoy_protos() -> None:
    a, b = workload("a"), workload("b", b"\x0a\x00\x00\x02")
    data = DeltaResponse(ADDRESS, "n-1", [a, b], ["gone/x"], "7", aliases=True).encode()
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(data)
    assert decoded.type_url == ADDRESS
    assert decoded.nonce == "n-1"
    assert decoded.system_version_info == "7"
    assert list(decoded.removed_resources) == ["gone/x"]
    assert [r.name for r in decoded.resources] == [a.name, b.name]
    first = decoded.resources[0]
    assert first.version == a.version
    assert list(first.aliases) == ["/10.0.0.1"]
    assert first.resource.type_url == ADDRESS
    address = workload_pb2.Address.FromString(first.resource.value)
    assert address.workload.name == "a"
    # Without aliases (what wildcard clients get, as from istiod): the same otherwise.
    plain = discovery_pb2.DeltaDiscoveryResponse.FromString(
        DeltaResponse(ADDRESS, "n-1", [a, b], ["gone/x"], "7").encode()
    )
    assert [list(r.aliases) for r in plain.resources] == [[], []]
    assert [r.resource for r in plain.resources] == [r.resource for r in decoded.resources]


def test_sotw_response_decodes_with_envoy_protos() -> None:
    a = workload("a")
    data = SotwResponse(ADDRESS, "3.1", "n-9", [a]).encode()
    decoded = discovery_pb2.DiscoveryResponse.FromString(data)
    assert (decoded.version_info, decoded.nonce, decoded.type_url) == ("3.1", "n-9", ADDRESS)
    assert decoded.resources[0].type_url == ADDRESS
    assert workload_pb2.Address.FromString(decoded.resources[0].value).workload.uid == a.name


def test_empty_response_is_valid() -> None:
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(
        DeltaResponse(ADDRESS, "n", [], []).encode()
    )
    assert decoded.nonce == "n" and not decoded.resources


def test_version_is_a_content_hash() -> None:
    assert workload("a").version == workload("a").version
    assert workload("a").version != workload("a", revision="v2").version


def test_large_lengths_use_multibyte_varints() -> None:
    big = Resource(ADDRESS, "big", b"x" * 70_000)
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(
        DeltaResponse(ADDRESS, "n", [big], []).encode()
    )
    assert decoded.resources[0].resource.value == b"x" * 70_000
