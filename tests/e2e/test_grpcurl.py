"""The real grpcurl against both gRPC ports: reflection, health and CSDS."""

from __future__ import annotations

import json

import pytest

from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, LISTENER

from .debug_plane import (
    WAYPOINT,
    ZTUNNEL,
    Plane,
    address,
    debug_plane_fixture,  # noqa: F401 - registers the debug_plane fixture
    grpcurl,
    tls_flags,
)

CSDS = "envoy.service.status.v3.ClientStatusDiscoveryService"
ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CA = "istio.v1.auth.IstioCertificateService"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


@pytest.mark.parametrize("tls", [False, True])
async def test_list_and_describe(debug_plane: Plane, tls: bool) -> None:
    flags = tls_flags(debug_plane, None) if tls else ["-plaintext"]
    listed = await grpcurl(*flags, address(debug_plane, tls=tls), "list")
    assert listed.status == 0, listed.stderr
    expected = {ADS, CSDS, HEALTH, REFLECTION} | ({CA} if tls else set())
    assert set(listed.stdout.split()) == expected

    described = await grpcurl(*flags, address(debug_plane, tls=tls), "describe", CSDS)
    assert described.status == 0, described.stderr
    assert "rpc FetchClientStatus" in described.stdout
    assert "rpc StreamClientStatus ( stream" in described.stdout
    message = await grpcurl(
        *flags,
        address(debug_plane, tls=tls),
        "describe",
        "envoy.service.status.v3.ClientStatusRequest",
    )
    assert "node_matchers" in message.stdout and "exclude_resource_contents" in message.stdout


@pytest.mark.parametrize("service", ["", ADS, CSDS])
async def test_health_check(debug_plane: Plane, service: str) -> None:
    for tls in (False, True):
        flags = tls_flags(debug_plane, None) if tls else ["-plaintext"]
        checked = await grpcurl(
            *flags,
            "-d",
            json.dumps({"service": service}),
            address(debug_plane, tls=tls),
            f"{HEALTH}/Check",
        )
        assert checked.status == 0, checked.stderr
        assert json.loads(checked.stdout) == {"status": "SERVING"}


def by_node(output: str) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """grpcurl's JSON -> node id -> type URL -> resource name ("" = the type) -> entry."""
    result: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    for config in json.loads(output).get("config", []):
        types = result.setdefault(config["node"]["id"], {})
        for entry in config["generic_xds_configs"]:
            types.setdefault(entry["type_url"], {})[entry.get("name", "")] = entry
    return result


async def test_csds_fetch_reports_connected_proxies_and_their_acks(debug_plane: Plane) -> None:
    await debug_plane.ztunnel()
    await debug_plane.waypoint()
    await debug_plane.settled(2)
    fetched = await grpcurl(
        "-plaintext", "-d", "{}", address(debug_plane), f"{CSDS}/FetchClientStatus"
    )
    assert fetched.status == 0, fetched.stderr
    nodes = by_node(fetched.stdout)
    assert set(nodes) == {ZTUNNEL, WAYPOINT}

    ztunnel = nodes[ZTUNNEL]
    assert {ztunnel[ADDRESS][""]["config_status"], ztunnel[AUTHORIZATION][""]["config_status"]} == {
        "SYNCED"
    }
    productpage = ztunnel[ADDRESS]["Kubernetes//Pod/bookinfo/productpage-v1-d5789fdfb-4xjbq"]
    assert productpage["client_status"] == "ACKED"
    assert productpage["xds_config"]["workload"]["name"] == "productpage-v1-d5789fdfb-4xjbq"
    waypoint = nodes[WAYPOINT]
    assert (
        waypoint[CLUSTER][""]["config_status"]
        == waypoint[LISTENER][""]["config_status"]
        == "SYNCED"
    )
    # The waypoint's resources are whatever its scope holds; each named one was ACKed.
    assert all(
        e["client_status"] == "ACKED"
        for t in (CLUSTER, LISTENER)
        for name, e in waypoint[t].items()
        if name
    )

    only = await grpcurl(
        "-plaintext",
        "-d",
        json.dumps(
            {
                "node_matchers": [{"node_id": {"suffix": ".bookinfo"}}],
                "exclude_resource_contents": True,
            }
        ),
        address(debug_plane),
        f"{CSDS}/FetchClientStatus",
    )
    assert set(by_node(only.stdout)) == {WAYPOINT}
    assert '"xds_config"' not in only.stdout


@pytest.mark.parametrize(
    "account, refusal",
    [
        ("istio-system/default", None),
        ("bookinfo/bookinfo-productpage", "PermissionDenied"),
        (None, "Unauthenticated"),
    ],
)
async def test_csds_on_the_tls_port_needs_a_system_identity(
    debug_plane: Plane, account: str | None, refusal: str | None
) -> None:
    await debug_plane.ztunnel()
    await debug_plane.settled(1)
    fetched = await grpcurl(
        *tls_flags(debug_plane, account),
        "-d",
        "{}",
        address(debug_plane, tls=True),
        f"{CSDS}/FetchClientStatus",
    )
    if refusal is None:
        assert fetched.status == 0, fetched.stderr
        assert set(by_node(fetched.stdout)) == {ZTUNNEL}
    else:
        assert fetched.status != 0 and refusal in fetched.stderr
        assert "productpage-v1" not in fetched.stdout + fetched.stderr
