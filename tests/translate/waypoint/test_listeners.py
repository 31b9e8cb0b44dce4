"""The three waypoint listeners (waypoint.md §3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import builders
from tests.translate.waypoint.fixtures import (
    SHOP,
    Doc,
    find,
    gateway,
    namespace,
    other,
    pod,
    shop,
    snapshot,
    translate,
)
from xds import type_urls

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager."
    "v3.HttpConnectionManager"
)


def _listeners(*docs: Doc) -> dict[str, Any]:
    return snapshot(translate(*docs))[type_urls.LISTENER]


def _chains(listener: dict[str, Any]) -> dict[str, Any]:
    return {chain["name"]: chain for chain in listener["filter_chains"]}


def _hcm(chain: dict[str, Any]) -> dict[str, Any]:
    managers = [
        f["typed_config"] for f in chain["filters"] if f["typed_config"]["@type"] == HCM_TYPE
    ]
    assert len(managers) == 1
    return managers[0]


def test_connect_terminate_is_an_mtls_http2_connect_server() -> None:
    listener = _listeners(*shop())["connect_terminate"]
    assert listener["address"] == {"socket_address": {"address": "0.0.0.0", "port_value": 15008}}
    chain = listener["filter_chains"][0]
    tls = chain["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    common = tls["common_tls_context"]
    assert common["alpn_protocols"] == ["h2"]
    assert common["tls_params"] == {
        "tls_minimum_protocol_version": "TLSv1_3",
        "tls_maximum_protocol_version": "TLSv1_3",
    }
    assert common["tls_certificate_sds_secret_configs"] == [
        {"name": "default", "sds_config": {"ads": {}, "resource_api_version": "V3"}}
    ]
    validation = common["combined_validation_context"]
    assert validation["validation_context_sds_secret_config"]["name"] == "ROOTCA"
    assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}
    ]
    hcm = _hcm(chain)
    assert hcm["http2_protocol_options"]["allow_connect"] is True
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["match"] == {"connect_matcher": {}}
    assert route["route"]["cluster"] == "main_internal"
    assert route["route"]["upgrade_configs"] == [{"upgrade_type": "CONNECT", "connect_config": {}}]


def test_connect_terminate_hands_the_tunnel_facts_to_main_internal() -> None:
    hcm = _hcm(_listeners(*shop())["connect_terminate"]["filter_chains"][0])
    state = hcm["http_filters"][0]["typed_config"]["on_request_headers"]
    entries = {entry["object_key"]: entry for entry in state}
    assert entries.keys() == {
        "envoy.filters.listener.original_dst.local_ip",
        "envoy.filters.listener.original_dst.remote_ip",
        "io.istio.connect_authority",
        "io.istio.peer_principal",
        "io.istio.local_principal",
    }
    assert all(entry["shared_with_upstream"] == "ONCE" for entry in state)
    # The address objects have registered factories; custom strings need the built-in one.
    for key, entry in entries.items():
        expected = None if key.startswith("envoy.filters.listener") else "envoy.hashable_string"
        assert entry.get("factory_key") == expected, key
    text = {
        key: entry["format_string"]["text_format_source"]["inline_string"]
        for key, entry in entries.items()
    }
    assert text["io.istio.peer_principal"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert text["envoy.filters.listener.original_dst.local_ip"] == "%REQ(:AUTHORITY)%"
    # The direct peer: an x-forwarded-for header on CONNECT must not move it.
    assert (
        text["envoy.filters.listener.original_dst.remote_ip"]
        == "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"
    )
    assert hcm["http_filters"][-1]["name"] == "envoy.filters.http.router"


def test_connect_originate_tunnels_to_the_restored_destination() -> None:
    listener = _listeners(*shop())["connect_originate"]
    assert "internal_listener" in listener
    assert listener["listener_filters"][0]["name"] == "envoy.filters.listener.original_dst"
    proxy = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert proxy["cluster"] == "connect_originate"
    assert proxy["tunneling_config"] == {"hostname": "%DOWNSTREAM_LOCAL_ADDRESS%"}


@pytest.mark.parametrize(
    ("vip", "port", "expected"),
    [
        # Declared HTTP: straight to the HTTP chain.
        ("10.96.1.10", "9080", {"action": "inbound-vip|9080|http|reviews.shop.svc.cluster.local"}),
        # gRPC is HTTP too.
        ("10.96.1.20", "7070", {"action": "inbound-vip|7070|http|ratings.shop.svc.cluster.local"}),
        # Declared TCP.
        ("10.96.1.30", "5432", {"action": "inbound-vip|5432|tcp|db.shop.svc.cluster.local"}),
        # Undeclared: sniffed; HTTP to the HTTP chain, anything else to TCP.
        (
            "10.96.1.40",
            "8000",
            {
                "sniff": (
                    "inbound-vip|8000|http|legacy.shop.svc.cluster.local",
                    "inbound-vip|8000|tcp|legacy.shop.svc.cluster.local",
                )
            },
        ),
    ],
)
def test_main_internal_matches_vip_then_port(vip: str, port: str, expected: dict[str, Any]) -> None:
    listener = _listeners(*shop())["main_internal"]
    tree = listener["filter_chain_matcher"]["matcher_tree"]
    assert tree["input"]["typed_config"]["@type"].endswith("DestinationIPInput")
    ranges = tree["custom_match"]["typed_config"]["range_matchers"]
    [entry] = [r for r in ranges if r["ranges"] == [{"address_prefix": vip, "prefix_len": 32}]]
    by_port = entry["on_match"]["matcher"]["matcher_tree"]
    assert by_port["input"]["typed_config"]["@type"].endswith("DestinationPortInput")
    target = by_port["exact_match_map"]["map"][port]
    chains = _chains(listener)
    if "action" in expected:
        assert target["action"]["typed_config"]["value"] == expected["action"]
        assert expected["action"] in chains
    else:
        http, tcp = expected["sniff"]
        sniff = target["matcher"]
        assert sniff["matcher_tree"]["input"]["typed_config"]["@type"].endswith(
            "ApplicationProtocolInput"
        )
        assert {
            k: v["action"]["name"]
            for k, v in sniff["matcher_tree"]["exact_match_map"]["map"].items()
        } == {"'h2c'": http, "'http/1.1'": http}
        assert sniff["on_no_match"]["action"]["name"] == tcp
        assert http in chains and tcp in chains


def test_http_inspector_is_skipped_on_ports_with_a_known_protocol() -> None:
    listener = _listeners(*shop())["main_internal"]
    inspector = listener["listener_filters"][1]
    assert inspector["name"] == "envoy.filters.listener.http_inspector"
    disabled = {
        rule["destination_port_range"]["start"]
        for rule in inspector["filter_disabled"]["or_match"]["rules"]
    }
    assert disabled == {5432, 7070, 9080}  # not 8000, which must be sniffed


def test_chains_carry_inline_routes_and_stock_filters_only() -> None:
    listener = _listeners(*shop())["main_internal"]
    chains = _chains(listener)
    grpc = _hcm(chains["inbound-vip|7070|http|ratings.shop.svc.cluster.local"])
    assert "http2_protocol_options" in grpc
    assert grpc["route_config"]["name"] == "inbound-vip|7070|http|ratings.shop.svc.cluster.local"
    assert "rds" not in grpc
    assert [f["name"] for f in grpc["http_filters"]] == [
        "envoy.filters.http.grpc_stats",
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        "envoy.filters.http.router",
    ]
    tcp = chains["inbound-vip|5432|tcp|db.shop.svc.cluster.local"]["filters"]
    assert [f["name"] for f in tcp] == ["envoy.filters.network.tcp_proxy"]
    types = {item["@type"] for item in find(_listeners(*shop()), lambda d: "@type" in d)}
    assert not [t for t in types if "istio" in t or "TypedStruct" in t or "stats.Plugin" in t]


def test_directly_bound_workloads_go_to_the_direct_chains() -> None:
    docs = [
        *shop(),
        namespace("shop"),
        gateway("shop", labels={"istio.io/waypoint-for": "all"}),
        pod("shop", "batch", "10.244.1.90", {"app": "batch"}),
    ]
    listener = _listeners(*docs)["main_internal"]
    ranges = listener["filter_chain_matcher"]["matcher_tree"]["custom_match"]["typed_config"][
        "range_matchers"
    ]
    [direct] = [
        r for r in ranges if {"address_prefix": "10.244.1.90", "prefix_len": 32} in r["ranges"]
    ]
    protocol = direct["on_match"]["matcher"]
    assert protocol["on_no_match"]["action"]["name"] == "direct-tcp"
    chains = _chains(listener)
    assert [f["name"] for f in chains["direct-tcp"]["filters"]] == [
        "connect_authority",
        "envoy.filters.network.tcp_proxy",
    ]
    assert chains["direct-tcp"]["filters"][1]["typed_config"]["cluster"] == "encap"
    # Any port of a workload may be used: the inspector cannot be skipped.
    assert "filter_disabled" not in listener["listener_filters"][1]


def test_a_service_without_addresses_cannot_be_matched_by_vip() -> None:
    headless = builders.service(
        "shop", "headless", "None", [{"name": "http", "port": 9080}], selector={"app": "reviews"}
    )
    listener = _listeners(*shop(), headless)["main_internal"]
    ranges = find(listener["filter_chain_matcher"], lambda d: "ranges" in d)
    assert ranges and all(r["ranges"] for r in ranges)
    assert not [
        r for r in ranges if any("headless" in str(v) for v in find(r, lambda d: "value" in d))
    ]


def test_other_waypoints_are_unaffected_by_bound_services_elsewhere() -> None:
    snap = snapshot(translate(*shop(), *other()), SHOP)
    assert "echo" not in str(snap[type_urls.LISTENER])
