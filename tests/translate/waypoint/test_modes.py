"""Sandwiched gateways and the PROXY inbound binding (waypoint.md §10)."""

from __future__ import annotations

from typing import Any

from tests.translate.waypoint.fixtures import (
    find,
    meta,
    policy,
    proxy_mesh,
    sandwich_mesh,
    snapshot,
    to_service,
    to_waypoint,
    translate,
)
from xds import type_urls


def _hcm(listener: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return config


def test_sandwich_is_a_plaintext_gateway_per_listener_port() -> None:
    resources = snapshot(translate(*sandwich_mesh()))
    listeners = resources[type_urls.LISTENER]
    assert set(listeners) == {"0.0.0.0_9080", "0.0.0.0_7070"}
    http = listeners["0.0.0.0_9080"]
    assert http["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9080}
    assert "transport_socket" not in http["filter_chains"][0]
    hcm = _hcm(http)
    assert hcm["strip_any_host_port"] is True
    hosts = {vhost["name"]: vhost for vhost in hcm["route_config"]["virtual_hosts"]}
    reviews = hosts["reviews.shop.svc.cluster.local:9080"]
    assert reviews["domains"] == [
        "reviews.shop.svc.cluster.local",
        "reviews.shop.svc",
        "reviews.shop",
        "reviews",
    ]
    assert (
        reviews["routes"][0]["route"]["cluster"] == "outbound|9080||reviews.shop.svc.cluster.local"
    )
    clusters = resources[type_urls.CLUSTER]
    assert "connect_originate" not in clusters
    # Plain addresses: ztunnel captures the gateway's outbound traffic and tunnels it.
    cla = resources[type_urls.ENDPOINT]["outbound|9080||reviews.shop.svc.cluster.local"]
    assert not find(cla, lambda d: "envoy_internal_address" in d)
    assert find(cla, lambda d: d.get("address") == "10.244.1.10")
    assert "transport_socket" not in clusters["outbound|9080||reviews.shop.svc.cluster.local"]


def test_sandwich_routes_attached_to_the_gateway() -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("shop", "front"),
        "spec": {
            "parentRefs": [{"name": "waypoint", "sectionName": "http"}],
            "hostnames": ["shop.example.com"],
            "rules": [{"backendRefs": [{"name": "reviews-v2", "port": 9080}]}],
        },
    }
    listeners = snapshot(translate(*sandwich_mesh(route)))[type_urls.LISTENER]
    hosts = {
        vhost["name"]: vhost
        for vhost in _hcm(listeners["0.0.0.0_9080"])["route_config"]["virtual_hosts"]
    }
    front = hosts["shop.example.com:9080"]
    assert front["domains"] == ["shop.example.com"]
    assert (
        front["routes"][0]["route"]["cluster"] == "outbound|9080||reviews-v2.shop.svc.cluster.local"
    )
    # The other listener (sectionName) does not get it.
    grpc_hosts = _hcm(listeners["0.0.0.0_7070"])["route_config"]["virtual_hosts"]
    assert "shop.example.com:7070" not in {vhost["name"] for vhost in grpc_hosts}


def test_sandwich_service_policies_apply_per_virtual_host() -> None:
    docs = sandwich_mesh(
        policy(
            "shop",
            "gw",
            {
                **to_waypoint(),
                "action": "DENY",
                "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}],
            },
        ),
        policy(
            "shop",
            "svc",
            {**to_service("reviews"), "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
        ),
    )
    hcm = _hcm(snapshot(translate(*docs))[type_urls.LISTENER]["0.0.0.0_9080"])
    names = [f["name"] for f in hcm["http_filters"]]
    assert names[:2] == ["envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow"]
    # The allow filter enforces nothing by default ...
    assert "rules" not in hcm["http_filters"][1]["typed_config"]
    hosts = {vhost["name"]: vhost for vhost in hcm["route_config"]["virtual_hosts"]}
    # ... and reviews overrides both filters with its own (and the gateway's) rules.
    override = hosts["reviews.shop.svc.cluster.local:9080"]["typed_per_filter_config"]
    assert set(override) == {"envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow"}
    allow = override["envoy.filters.http.rbac.allow"]["rbac"]["rules"]["policies"]
    assert list(allow) == ["ns[shop]-policy[svc]-rule[0]"]
    assert "typed_per_filter_config" not in hosts["reviews-v1.shop.svc.cluster.local:9080"]


def test_proxy_binding_serves_main_internal_chains_behind_the_proxy_header() -> None:
    resources = snapshot(translate(*proxy_mesh()))
    listeners = resources[type_urls.LISTENER]
    assert set(listeners) == {"proxy_inbound"}
    inbound = listeners["proxy_inbound"]
    assert "internal_listener" not in inbound
    assert inbound["address"]["socket_address"]["port_value"] == 15088
    proxy_protocol = inbound["listener_filters"][0]
    assert proxy_protocol["name"] == "envoy.filters.listener.proxy_protocol"
    assert proxy_protocol["typed_config"]["rules"] == [
        {
            "tlv_type": 0xD0,
            "on_tlv_present": {
                "metadata_namespace": "envoy.filters.listener.proxy_protocol",
                "key": "peer_principal",
            },
        }
    ]
    chains = {chain["name"]: chain for chain in inbound["filter_chains"]}
    assert "inbound-vip|9080|http|reviews.shop.svc.cluster.local" in chains
    # Every chain first publishes the caller as connect_terminate would.
    for chain in chains.values():
        state = chain["filters"][0]["typed_config"]["on_new_connection"]
        assert [entry["object_key"] for entry in state] == [
            "envoy.filters.listener.original_dst.remote_ip",
            "io.istio.peer_principal",
        ]
    assert chains["direct-tcp"]["filters"][-1]["typed_config"]["cluster"] == "PassthroughCluster"
    clusters = resources[type_urls.CLUSTER]
    assert not {"connect_originate", "main_internal", "encap"} & set(clusters)
    # ztunnel does the outbound HBONE: VIP clusters point at plain pod addresses.
    cla = resources[type_urls.ENDPOINT]["inbound-vip|9080|http|reviews.shop.svc.cluster.local"]
    assert not find(cla, lambda d: "envoy_internal_address" in d)


def test_proxy_binding_keeps_identity_policies() -> None:
    rules = [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/client"]}}]}]
    docs = proxy_mesh(policy("shop", "p", {**to_waypoint(), "rules": rules}))
    listeners = snapshot(translate(*docs))[type_urls.LISTENER]
    assert find(listeners["proxy_inbound"], lambda d: d.get("key") == "io.istio.peer_principal")
