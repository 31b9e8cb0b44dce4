"""DestinationRule traffic policies on waypoint clusters, merged as istiod merges them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translate.waypoint.fixtures import REVIEWS, Doc, meta, shop, snapshot, translate
from xds import type_urls

V1 = "inbound-vip|9080|http/v1|reviews.shop.svc.cluster.local"
V2 = "inbound-vip|9080|http/v2|reviews.shop.svc.cluster.local"
UNLIMITED = 4294967295
DEFAULT_LIMITS = {
    "max_connections": UNLIMITED,
    "max_pending_requests": UNLIMITED,
    "max_requests": UNLIMITED,
    "max_retries": UNLIMITED,
    "track_remaining": True,
}
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _clusters(policy: Doc, subsets: list[Doc] | None = None) -> dict[str, Any]:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta("shop", "reviews"),
        "spec": {
            "host": "reviews",
            "trafficPolicy": policy,
            "subsets": subsets
            or [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    clusters: dict[str, Any] = snapshot(translate(*shop(), rule))[type_urls.CLUSTER]
    return clusters


def _limits(cluster: dict[str, Any]) -> dict[str, Any]:
    [thresholds] = cluster["circuit_breakers"]["thresholds"]
    return dict(thresholds)


@pytest.mark.parametrize(
    ("balancer", "lb_policy"),
    [
        pytest.param({"simple": "ROUND_ROBIN"}, None, id="round-robin"),
        pytest.param({"simple": "LEAST_REQUEST"}, "LEAST_REQUEST", id="least-request"),
        pytest.param({"simple": "LEAST_CONN"}, "LEAST_REQUEST", id="least-conn"),
        pytest.param({"simple": "RANDOM"}, "RANDOM", id="random"),
        pytest.param({"consistentHash": {"useSourceIp": True}}, "RING_HASH", id="ring-hash"),
    ],
)
def test_load_balancer(balancer: Doc, lb_policy: str | None) -> None:
    cluster = _clusters({"loadBalancer": balancer})[REVIEWS]
    assert cluster.get("lb_policy") == lb_policy  # ROUND_ROBIN is the proto default


def test_connection_pool_sets_limits_timeouts_and_http_options() -> None:
    cluster = _clusters(
        {
            "connectionPool": {
                "tcp": {"maxConnections": 10, "connectTimeout": "2s", "idleTimeout": "1h"},
                "http": {
                    "http1MaxPendingRequests": 5,
                    "http2MaxRequests": 20,
                    "maxRetries": 3,
                    "idleTimeout": "30s",
                    "maxRequestsPerConnection": 1,
                },
            }
        }
    )[REVIEWS]
    assert _limits(cluster) == {
        "max_connections": 10,
        "max_pending_requests": 5,
        "max_requests": 20,
        "max_retries": 3,
        "track_remaining": True,
    }
    assert cluster["connect_timeout"] == "2s"
    options = cluster["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert options["common_http_protocol_options"] == {
        "idle_timeout": "30s",  # the HTTP idle timeout wins over the TCP one
        "max_requests_per_connection": 1,
    }
    assert options["explicit_http_config"] == {"http_protocol_options": {}}


def test_outlier_detection_is_consecutive_errors_only_with_no_panic_threshold() -> None:
    cluster = _clusters(
        {
            "outlierDetection": {
                "consecutive5xxErrors": 3,
                "consecutiveGatewayErrors": 0,
                "interval": "5s",
                "baseEjectionTime": "30s",
                "maxEjectionPercent": 50,
            }
        }
    )[REVIEWS]
    assert cluster["outlier_detection"] == {
        "consecutive_5xx": 3,
        "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 0,
        "enforcing_consecutive_gateway_failure": 0,
        "interval": "5s",
        "base_ejection_time": "30s",
        "max_ejection_percent": 50,
        "enforcing_success_rate": 0,
    }
    assert cluster["common_lb_config"] == {"healthy_panic_threshold": {}}  # 0 %


def test_port_level_settings_replace_every_component() -> None:
    clusters = _clusters(
        {
            "connectionPool": {"tcp": {"maxConnections": 7}},
            "outlierDetection": {"consecutive5xxErrors": 2},
            "portLevelSettings": [
                {"port": {"number": 9080}, "loadBalancer": {"simple": "RANDOM"}},
                {"port": {"number": 1234}, "connectionPool": {"tcp": {"maxConnections": 1}}},
            ],
        }
    )
    cluster = clusters[REVIEWS]
    assert cluster["lb_policy"] == "RANDOM"
    assert _limits(cluster) == DEFAULT_LIMITS  # not inherited from the top level
    assert "outlier_detection" not in cluster


def test_a_subsets_components_override_the_rules_one_by_one() -> None:
    clusters = _clusters(
        {"loadBalancer": {"simple": "RANDOM"}, "outlierDetection": {"consecutive5xxErrors": 4}},
        subsets=[
            {
                "name": "v1",
                "labels": {"version": "v1"},
                "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 9}}},
            },
            {
                "name": "v2",
                "labels": {"version": "v2"},
                "trafficPolicy": {
                    "portLevelSettings": [
                        {"port": {"number": 9080}, "loadBalancer": {"simple": "LEAST_REQUEST"}}
                    ]
                },
            },
        ],
    )
    v1, v2 = clusters[V1], clusters[V2]
    assert v1["lb_policy"] == "RANDOM" and v1["outlier_detection"]["consecutive_5xx"] == 4
    assert _limits(v1)["max_requests"] == 9
    # The subset's port-level entry replaces everything, the rule's outlier detection too.
    assert v2["lb_policy"] == "LEAST_REQUEST" and "outlier_detection" not in v2
    assert _limits(clusters[REVIEWS]) == DEFAULT_LIMITS


def _external(tls: Doc) -> dict[str, Any]:
    entry = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": meta("shop", "api"),
        "spec": {
            "hosts": ["api.example.com"],
            "addresses": ["240.0.0.9"],
            "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
            "resolution": "DNS",
        },
    }
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta("shop", "api"),
        "spec": {"host": "api.example.com", "trafficPolicy": {"tls": tls}},
    }
    routes = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta("shop", "to-api"),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
            "rules": [
                {
                    "backendRefs": [
                        {
                            "group": "networking.istio.io",
                            "kind": "Hostname",
                            "name": "api.example.com",
                            "port": 443,
                        }
                    ]
                }
            ],
        },
    }
    clusters = snapshot(translate(*shop(), entry, rule, routes))[type_urls.CLUSTER]
    [cluster] = [c for name, c in clusters.items() if name.endswith("|api.example.com")]
    socket: dict[str, Any] = cluster["transport_socket"]
    return socket


def test_tls_origination_to_an_external_host() -> None:
    socket = _external(
        {
            "mode": "MUTUAL",
            "caCertificates": "/etc/certs/ca.pem",
            "clientCertificate": "/etc/certs/client.pem",
            "privateKey": "/etc/certs/client.key",
            "subjectAltNames": ["api.example.com"],
        }
    )
    assert socket["typed_config"] == {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": "/etc/certs/ca.pem"},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": "api.example.com"}}
                ],
            },
            "tls_certificates": [
                {
                    "certificate_chain": {"filename": "/etc/certs/client.pem"},
                    "private_key": {"filename": "/etc/certs/client.key"},
                }
            ],
        },
        "sni": "api.example.com",
    }
    skipped = _external({"mode": "SIMPLE", "caCertificates": "/ca", "insecureSkipVerify": True})
    assert skipped["typed_config"]["common_tls_context"] == {}


ADS = {"ads": {}, "resource_api_version": "V3"}


@pytest.mark.parametrize(
    ("tls", "common"),
    [
        pytest.param(
            {"mode": "MUTUAL", "credentialName": "api-client", "subjectAltNames": ["api.test"]},
            {
                "tls_certificate_sds_secret_configs": [
                    {"name": "kubernetes://api-client", "sds_config": ADS}
                ],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": "api.test"}}
                        ]
                    },
                    "validation_context_sds_secret_config": {
                        "name": "kubernetes://api-client-cacert",
                        "sds_config": ADS,
                    },
                },
            },
            id="mutual",
        ),
        pytest.param(
            # The files lose to the Secret, as in istiod; SIMPLE takes only its CA bundle.
            {"mode": "SIMPLE", "credentialName": "kubernetes://api-ca", "caCertificates": "/x"},
            {
                "combined_validation_context": {
                    "default_validation_context": {},
                    "validation_context_sds_secret_config": {
                        "name": "kubernetes://api-ca-cacert",
                        "sds_config": ADS,
                    },
                },
            },
            id="simple",
        ),
        pytest.param(
            {"mode": "MUTUAL", "credentialName": "api-client", "insecureSkipVerify": True},
            {
                "tls_certificate_sds_secret_configs": [
                    {"name": "kubernetes://api-client", "sds_config": ADS}
                ]
            },
            id="mutual-without-verification",
        ),
        pytest.param(
            {"mode": "MUTUAL", "credentialName": "builtin://"},
            {
                "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": ADS}],
                "combined_validation_context": {
                    "default_validation_context": {},
                    "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": ADS},
                },
            },
            id="builtin",
        ),
    ],
)
def test_tls_origination_with_a_credential_name(tls: Doc, common: dict[str, Any]) -> None:
    socket = _external(tls)
    assert socket["typed_config"]["common_tls_context"] == common
    assert socket["typed_config"]["sni"] == "api.example.com"


def test_tls_to_a_mesh_service_is_originated_inside_the_tunnel() -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta("shop", "reviews"),
        "spec": {
            "host": "reviews.shop.svc.cluster.local",
            "trafficPolicy": {"tls": {"mode": "SIMPLE", "caCertificates": "/etc/certs/ca.pem"}},
        },
    }
    clusters = snapshot(translate(*shop(), rule))[type_urls.CLUSTER]
    transport = clusters[REVIEWS]["transport_socket"]
    assert transport["name"] == "internal_upstream"
    inner = transport["typed_config"]["transport_socket"]["typed_config"]
    assert inner == {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "validation_context": {"trusted_ca": {"filename": "/etc/certs/ca.pem"}}
        },
        "sni": "reviews.shop.svc.cluster.local",
    }
    # The tunnel still learns which pod it is for.
    names = [m["name"] for m in transport["typed_config"]["passthrough_metadata"]]
    assert names == ["envoy.filters.listener.original_dst", "istio"]
    # Without a DestinationRule: plaintext inside the tunnel.
    plain = snapshot(translate(*shop()))[type_urls.CLUSTER][REVIEWS]["transport_socket"]
    assert plain["typed_config"]["transport_socket"]["name"] == "raw_buffer"
