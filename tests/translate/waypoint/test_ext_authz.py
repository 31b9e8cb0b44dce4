"""CUSTOM AuthorizationPolicies on waypoints: an external authorizer from the mesh config,
called only for the requests the policy's rules match (istiod's shadow-RBAC design)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.translate.waypoint.fixtures import (
    REVIEWS,
    Doc,
    policy,
    service,
    shop,
    snapshot,
    to_service,
    to_waypoint,
    translate,
)
from xds import type_urls
from xds.model.frozen import FrozenMap
from xds.model.mesh import ExtAuthzProvider, MeshConfig

DB = "inbound-vip|5432|tcp|db.shop.svc.cluster.local"
AUTHZ_HOST = "ext-authz.authz.svc.cluster.local"
AUTHZ_CLUSTER = f"outbound|9000||{AUTHZ_HOST}"
GRPC = ExtAuthzProvider(name="opa", grpc=True, service=f"authz/{AUTHZ_HOST}", port=9000)
HTTP = ExtAuthzProvider(
    name="checker",
    grpc=False,
    service=AUTHZ_HOST,
    port=9000,
    timeout=timedelta(seconds=2),
    fail_open=True,
    status_on_error=503,
    path_prefix="/check",
    include_request_headers_in_check=("x-user", "x-ext-*"),
    include_additional_headers_in_check=FrozenMap({"x-from": "waypoint"}),
    headers_to_upstream_on_allow=("x-auth-*",),
    headers_to_downstream_on_deny=("*-reason",),
)
AUTHZ_SERVICE = service("authz", "ext-authz", "10.96.9.9", [{"name": "grpc", "port": 9000}])


def _custom(provider: str, target: Doc | None = None, **annotations: str) -> Doc:
    spec = {
        **(target or to_waypoint()),
        "action": "CUSTOM",
        "provider": {"name": provider},
        "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}],
    }
    return policy("shop", "ext", spec, annotations=annotations or None)


def _http_filters(*docs: Doc, providers: tuple[ExtAuthzProvider, ...] = (GRPC, HTTP)) -> list[Any]:
    config = MeshConfig(extension_providers=providers)
    listeners = snapshot(translate(*shop(), AUTHZ_SERVICE, *docs, config=config))
    [chain] = [
        c
        for c in listeners[type_urls.LISTENER]["main_internal"]["filter_chains"]
        if c["name"] == REVIEWS
    ]
    filters: list[Any] = chain["filters"][-1]["typed_config"]["http_filters"]
    return filters


def test_a_grpc_authorizer_is_called_for_what_the_rules_match() -> None:
    filters = _http_filters(_custom("opa"))
    names = [f["name"] for f in filters]
    # Ahead of the RBAC filters and of the router, as istiod orders them.
    assert names[:2] == ["envoy.filters.http.rbac.custom.opa", "envoy.filters.http.ext_authz.opa"]
    shadow = filters[0]["typed_config"]
    assert "rules" not in shadow  # never enforces by itself
    assert shadow["shadow_rules_stat_prefix"] == "istio_ext_authz_"
    assert shadow["shadow_rules"]["action"] == "DENY"
    assert list(shadow["shadow_rules"]["policies"]) == [
        "istio-ext-authz-opa-ns[shop]-policy[ext]-rule[0]"
    ]
    authz = filters[1]["typed_config"]
    assert authz["grpc_service"] == {
        "envoy_grpc": {"cluster_name": AUTHZ_CLUSTER, "authority": AUTHZ_HOST},
        "timeout": "600s",
    }
    assert authz["transport_api_version"] == "V3"
    assert authz["filter_enabled_metadata"] == {
        "filter": "envoy.filters.http.rbac",
        "path": [{"key": "istio_ext_authz_shadow_effective_policy_id"}],
        "value": {"string_match": {"prefix": "istio-ext-authz-opa"}},
    }
    assert "envoy.filters.http.rbac.deny" not in names  # not also denied


def test_an_http_authorizer_with_istiods_options() -> None:
    authz = _http_filters(_custom("checker"))[1]["typed_config"]
    assert authz["http_service"] == {
        "server_uri": {
            "uri": f"http://{AUTHZ_HOST}",
            "cluster": AUTHZ_CLUSTER,
            "timeout": "2s",
        },
        "path_prefix": "/check",
        "authorization_request": {"headers_to_add": [{"key": "x-from", "value": "waypoint"}]},
        "authorization_response": {
            "allowed_upstream_headers": {"patterns": [{"prefix": "x-auth-", "ignore_case": True}]},
            "allowed_client_headers": {"patterns": [{"suffix": "-reason", "ignore_case": True}]},
        },
    }
    assert authz["allowed_headers"] == {
        "patterns": [
            {"exact": "x-user", "ignore_case": True},
            {"prefix": "x-ext-", "ignore_case": True},
        ]
    }
    assert authz["failure_mode_allow"] is True
    assert authz["status_on_error"] == {"code": "ServiceUnavailable"}


@pytest.mark.parametrize(
    ("doc", "providers"),
    [
        pytest.param(_custom("unknown"), (GRPC,), id="unknown-provider"),
        pytest.param(
            _custom("opa"),
            (ExtAuthzProvider("opa", True, "nowhere.svc.cluster.local", 9000),),
            id="provider-service-not-in-the-mesh",
        ),
        pytest.param(
            _custom("opa"),
            (ExtAuthzProvider("opa", True, AUTHZ_HOST, 1234),),
            id="provider-port-not-on-the-service",
        ),
        pytest.param(_custom("opa", **{"istio.io/dry-run": "true"}), (GRPC,), id="dry-run"),
    ],
)
def test_where_no_authorizer_can_be_called_the_rules_deny(
    doc: Doc, providers: tuple[ExtAuthzProvider, ...]
) -> None:
    filters = _http_filters(doc, providers=providers)
    names = [f["name"] for f in filters]
    assert not any("ext_authz" in name for name in names)
    deny = next(f for f in filters if f["name"] == "envoy.filters.http.rbac.deny")["typed_config"]
    rules = deny.get("rules") or deny.get("shadow_rules")
    assert rules["action"] == "DENY" and "ns[shop]-policy[ext]-rule[0]" in rules["policies"]


def test_tcp_chains_deny_what_custom_rules_match() -> None:
    config = MeshConfig(extension_providers=(GRPC,))
    doc = _custom("opa", to_service("db"))
    doc["spec"]["rules"] = [{"to": [{"operation": {"ports": ["5432"]}}]}]
    listeners = snapshot(translate(*shop(), AUTHZ_SERVICE, doc, config=config))
    [chain] = [
        c
        for c in listeners[type_urls.LISTENER]["main_internal"]["filter_chains"]
        if c["name"] == DB
    ]
    names = [f["name"] for f in chain["filters"]]
    assert "envoy.filters.network.rbac.deny" in names


def test_the_authorizers_service_gets_a_cluster() -> None:
    config = MeshConfig(extension_providers=(GRPC,))
    clusters = snapshot(translate(*shop(), AUTHZ_SERVICE, _custom("opa"), config=config))
    cluster = clusters[type_urls.CLUSTER][AUTHZ_CLUSTER]
    options = cluster["typed_extension_protocol_options"]
    http2 = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in http2["explicit_http_config"]
