"""Inline routes from HTTPRoute, GRPCRoute and VirtualService (waypoint.md §6)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translate.waypoint.fixtures import (
    ECHO,
    REVIEWS,
    Doc,
    http_route,
    meta,
    reference_grant,
    reviews_subsets,
    shop,
    snapshot,
    translate,
)
from xds import type_urls

V1 = "inbound-vip|9080|http|reviews-v1.shop.svc.cluster.local"
V2 = "inbound-vip|9080|http|reviews-v2.shop.svc.cluster.local"
DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host."
                "previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": "5",
}


def _routes(*docs: Doc, chain: str = REVIEWS) -> list[dict[str, Any]]:
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [found] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == chain]
    hcm = found["filters"][-1]["typed_config"]
    config = hcm["route_config"]
    assert config["name"] == chain
    [vhost] = config["virtual_hosts"]
    assert vhost["domains"] == ["*"]
    assert vhost["name"] == f"inbound|http|{chain.split('|')[1]}"
    routes: list[dict[str, Any]] = vhost["routes"]
    return routes


def _backend(name: str, weight: int | None = None, port: int = 9080) -> Doc:
    out: Doc = {"name": name, "port": port}
    if weight is not None:
        out["weight"] = weight
    return out


def test_without_routes_the_service_gets_the_default_route() -> None:
    [route] = _routes()
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster"] == REVIEWS
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["retry_policy"] == DEFAULT_RETRY


def test_split_90_10_with_a_header_match_first() -> None:
    rules = [
        {
            "matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
            "backendRefs": [_backend("reviews-v2")],
        },
        {"backendRefs": [_backend("reviews-v1", 90), _backend("reviews-v2", 10)]},
    ]
    header, split = _routes(http_route("shop", "reviews", "reviews", rules))
    assert header["match"]["headers"] == [{"name": "end-user", "string_match": {"exact": "jason"}}]
    assert header["route"]["cluster"] == V2
    assert split["match"] == {"prefix": "/"}
    assert split["route"]["weighted_clusters"]["clusters"] == [
        {"name": V1, "weight": 90},
        {"name": V2, "weight": 10},
    ]
    assert split["route"]["cluster_not_found_response_code"] == "INTERNAL_SERVER_ERROR"
    assert split["route"]["retry_policy"] == DEFAULT_RETRY
    assert split["metadata"]["filter_metadata"]["istio"]["config"].endswith("/httproute/reviews")
    assert split["name"] == "shop.reviews.1"


MATCH_CASES = [
    pytest.param({"path": {"type": "Exact", "value": "/a"}}, {"path": "/a"}, id="exact"),
    pytest.param(
        {"path": {"type": "PathPrefix", "value": "/api/"}},
        {"path_separated_prefix": "/api"},
        id="prefix",
    ),
    pytest.param({"path": {"type": "PathPrefix", "value": "/"}}, {"prefix": "/"}, id="root"),
    pytest.param(
        {"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}},
        {"safe_regex": {"regex": "/v[0-9]+/.*"}},
        id="regex",
    ),
    pytest.param(
        {"method": "POST"},
        {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
        id="method",
    ),
    pytest.param(
        {"queryParams": [{"name": "debug", "value": "1"}]},
        {"prefix": "/", "query_parameters": [{"name": "debug", "string_match": {"exact": "1"}}]},
        id="query",
    ),
    pytest.param(
        {"headers": [{"type": "RegularExpression", "name": "X-Tenant", "value": "a.*"}]},
        {
            "prefix": "/",
            "headers": [{"name": "x-tenant", "string_match": {"safe_regex": {"regex": "a.*"}}}],
        },
        id="header-regex",
    ),
]


@pytest.mark.parametrize(("match", "expected"), MATCH_CASES)
def test_httproute_matches(match: Doc, expected: Doc) -> None:
    routes = _routes(
        http_route(
            "shop", "r", "reviews", [{"matches": [match], "backendRefs": [_backend("reviews-v1")]}]
        )
    )
    assert routes[0]["match"] == expected
    assert routes[0]["route"]["cluster"] == V1


FILTER_CASES = [
    pytest.param(
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": "x-a", "value": "1"}],
                "add": [{"name": "x-b", "value": "2"}],
                "remove": ["x-c"],
            },
        },
        {
            "request_headers_to_add": [
                {
                    "header": {"key": "x-a", "value": "1"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {"header": {"key": "x-b", "value": "2"}},
            ],
            "request_headers_to_remove": ["x-c"],
        },
        id="request-headers",
    ),
    pytest.param(
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": "x-served-by", "value": "waypoint"}]},
        },
        {
            "response_headers_to_add": [
                {
                    "header": {"key": "x-served-by", "value": "waypoint"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ]
        },
        id="response-headers",
    ),
    pytest.param(
        {
            "type": "RequestRedirect",
            "requestRedirect": {"scheme": "https", "hostname": "example.com", "statusCode": 301},
        },
        {"redirect": {"scheme_redirect": "https", "host_redirect": "example.com"}},
        id="redirect",
    ),
    pytest.param(
        {
            "type": "RequestRedirect",
            "requestRedirect": {
                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"},
                "port": 8443,
                "statusCode": 302,
            },
        },
        {"redirect": {"path_redirect": "/new", "port_redirect": 8443, "response_code": "FOUND"}},
        id="redirect-path",
    ),
    pytest.param(
        {
            "type": "URLRewrite",
            "urlRewrite": {
                "hostname": "reviews.internal",
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"},
            },
        },
        {"route.prefix_rewrite": "/v2", "route.host_rewrite_literal": "reviews.internal"},
        id="rewrite-prefix",
    ),
    pytest.param(
        {
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/fixed"}},
        },
        {"route.regex_rewrite": {"pattern": {"regex": "^.*$"}, "substitution": "/fixed"}},
        id="rewrite-full",
    ),
    pytest.param(
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "reviews-v2", "port": 9080}, "percent": 25},
        },
        {
            "route.request_mirror_policies": [
                {
                    "cluster": V2,
                    "runtime_fraction": {
                        "default_value": {"numerator": 250000, "denominator": "MILLION"}
                    },
                    "trace_sampled": False,
                }
            ]
        },
        id="mirror",
    ),
    pytest.param(
        {
            "type": "CORS",
            "cors": {
                "allowOrigins": [
                    "https://shop.example.com",
                    "https://*.example.com",
                    "http://localhost:*",
                    "",
                ],
                "allowCredentials": True,
                "allowMethods": ["GET", "PUT"],
                "allowHeaders": ["x-user"],
                "exposeHeaders": ["x-trace"],
                "maxAge": 600,
            },
        },
        {
            ("typed_per_filter_config", "envoy.filters.http.cors"): {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allow_origin_string_match": [
                    {"exact": "https://shop.example.com"},
                    {"safe_regex": {"regex": "^https://.*\\.example\\.com$"}},
                    {"prefix": "http://localhost:"},
                ],
                "allow_methods": "GET,PUT",
                "allow_headers": "x-user",
                "expose_headers": "x-trace",
                "max_age": "600",
                "allow_credentials": True,
                "filter_enabled": {"default_value": {"numerator": 100}},
                "forward_not_matching_preflights": False,
            },
            "route.cluster": V1,
        },
        id="cors",
    ),
    pytest.param(
        {"type": "CORS", "cors": {"allowOrigins": ["*"], "maxAge": 0}},
        {
            ("typed_per_filter_config", "envoy.filters.http.cors"): {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allow_origin_string_match": [
                    {"safe_regex": {"regex": "^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\\s?#]+$"}}
                ],
                "filter_enabled": {"default_value": {"numerator": 100}},
                "forward_not_matching_preflights": False,
            },
        },
        id="cors-any-origin",
    ),
    pytest.param(
        {"type": "ExtensionRef", "extensionRef": {"group": "x", "kind": "y", "name": "z"}},
        {"direct_response": {"status": 500}},
        id="unsupported-filter",
    ),
]


@pytest.mark.parametrize(("filter_", "expected"), FILTER_CASES)
def test_httproute_filters(filter_: Doc, expected: Doc) -> None:
    rules = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "filters": [filter_],
            "backendRefs": [_backend("reviews-v1")],
        }
    ]
    route = _routes(http_route("shop", "r", "reviews", rules))[0]
    for key, value in expected.items():
        node: Any = route
        for part in key.split(".") if isinstance(key, str) else key:
            node = node[part]
        assert node == value, key


def test_timeouts_and_retries() -> None:
    rules = [
        {
            "backendRefs": [_backend("reviews-v1")],
            "timeouts": {"request": "10s", "backendRequest": "2s"},
            "retry": {"attempts": 3, "codes": [503, 502], "backoff": "100ms"},
        }
    ]
    action = _routes(http_route("shop", "r", "reviews", rules))[0]["route"]
    assert action["timeout"] == "10s"
    assert action["max_stream_duration"] == {"grpc_timeout_header_max": "10s"}
    retry = action["retry_policy"]
    assert retry["num_retries"] == 3
    assert retry["retriable_status_codes"] == [502, 503]
    assert retry["per_try_timeout"] == "2s"
    assert retry["retry_back_off"] == {"base_interval": "0.100s"}
    assert retry["retry_on"] == (
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    )


def test_zero_retries_means_no_retry_policy() -> None:
    rules = [{"backendRefs": [_backend("reviews-v1")], "retry": {"attempts": 0}}]
    assert "retry_policy" not in _routes(http_route("shop", "r", "reviews", rules))[0]["route"]


def test_all_zero_weights_answer_500() -> None:
    rules = [{"backendRefs": [_backend("reviews-v1", 0)]}]
    route = _routes(http_route("shop", "r", "reviews", rules))[0]
    assert route["direct_response"] == {"status": 500}


def test_a_rule_without_backends_goes_to_the_parent_service() -> None:
    rules = [{"matches": [{"path": {"type": "Exact", "value": "/x"}}]}]
    assert _routes(http_route("shop", "r", "reviews", rules))[0]["route"]["cluster"] == REVIEWS


def test_a_route_for_another_port_does_not_apply() -> None:
    route = http_route(
        "shop", "r", "reviews", [{"backendRefs": [_backend("reviews-v1")]}], port=9999
    )
    assert _routes(route)[0]["name"] == "default"


def test_routes_are_ordered_by_gateway_api_precedence() -> None:
    older = http_route(
        "shop",
        "a",
        "reviews",
        [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
                "backendRefs": [_backend("reviews-v1")],
            }
        ],
        created="2026-01-01T00:00:00Z",
    )
    newer = http_route(
        "shop",
        "b",
        "reviews",
        [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/a/longer"}}],
                "backendRefs": [_backend("reviews-v2")],
            },
            {
                "matches": [{"path": {"type": "Exact", "value": "/a"}}],
                "backendRefs": [_backend("reviews-v2")],
            },
        ],
        created="2026-02-01T00:00:00Z",
    )
    matches = [route["match"] for route in _routes(older, newer)]
    assert matches == [
        {"path": "/a"},
        {"path_separated_prefix": "/a/longer"},
        {"path_separated_prefix": "/a"},
    ]


def test_a_hostname_backend_named_in_another_namespace_needs_a_grant_too() -> None:
    hostname = {"group": "networking.istio.io", "kind": "Hostname", "name": "api.example.com"}
    for namespace, refused in (("shop", False), ("other", True)):
        rules = [{"backendRefs": [{**hostname, "namespace": namespace, "port": 443}]}]
        [route] = _routes(http_route("shop", "r", "reviews", rules))
        assert (route["route"]["cluster"] == "UnknownService") == refused, namespace


@pytest.mark.parametrize(
    ("grants", "cluster"),
    [
        pytest.param([], "UnknownService", id="no-grant"),
        pytest.param([reference_grant("HTTPRoute")], ECHO, id="granted-by-name"),
        pytest.param(
            [reference_grant("HTTPRoute", to_name=None)], ECHO, id="granted-every-service"
        ),
        pytest.param(
            [reference_grant("GRPCRoute")], "UnknownService", id="granted-to-another-kind"
        ),
        pytest.param(
            [reference_grant("HTTPRoute", "db")], "UnknownService", id="granted-another-name"
        ),
        pytest.param(
            [reference_grant("HTTPRoute", namespace="elsewhere")],
            "UnknownService",
            id="granted-to-another-namespace",
        ),
    ],
)
def test_a_cross_namespace_backend_needs_a_reference_grant(grants: list[Doc], cluster: str) -> None:
    from tests.translate.waypoint.fixtures import other

    rules = [{"backendRefs": [{"name": "echo", "namespace": "other", "port": 9080}]}]
    docs = [*other(), *grants, http_route("shop", "r", "reviews", rules)]
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [chain] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == REVIEWS]
    [route] = chain["filters"][-1]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["cluster"] == cluster
    assert route["route"]["cluster_not_found_response_code"] == "INTERNAL_SERVER_ERROR"


def test_grpcroute_method_match() -> None:
    grpc_route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": meta("shop", "ratings"),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "ratings"}],
            "rules": [
                {
                    "matches": [{"method": {"service": "shop.Ratings", "method": "Get"}}],
                    "backendRefs": [{"name": "ratings", "port": 7070}],
                }
            ],
        },
    }
    chain = "inbound-vip|7070|http|ratings.shop.svc.cluster.local"
    routes = _routes(grpc_route, chain=chain)
    assert routes[0]["match"] == {"path": "/shop.Ratings/Get"}
    assert routes[0]["route"]["cluster"] == chain


def _virtual_service(http: list[Doc], hosts: list[str] | None = None) -> Doc:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": meta("shop", "reviews"),
        "spec": {"hosts": hosts or ["reviews"], "http": http},
    }


def test_virtual_service_subsets_weights_fault_timeout_retries() -> None:
    vs = _virtual_service(
        [
            {
                "name": "faulty",
                "match": [{"uri": {"prefix": "/fault"}}],
                "fault": {
                    "abort": {"httpStatus": 418, "percentage": {"value": 50}},
                    "delay": {"fixedDelay": "1s"},
                },
                "route": [{"destination": {"host": "reviews", "subset": "v1"}}],
            },
            {
                "name": "split",
                "timeout": "3s",
                "retries": {"attempts": 4, "retryOn": "5xx,503"},
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20},
                ],
            },
            {"name": "unreachable", "route": [{"destination": {"host": "reviews"}}]},
        ]
    )
    faulty, split = _routes(vs, reviews_subsets())
    assert faulty["match"] == {"prefix": "/fault"}
    assert faulty["route"]["cluster"] == "inbound-vip|9080|http/v1|reviews.shop.svc.cluster.local"
    fault = faulty["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["abort"] == {
        "http_status": 418,
        "percentage": {"numerator": 500000, "denominator": "MILLION"},
    }
    assert fault["delay"]["fixed_delay"] == "1s"
    assert split["route"]["timeout"] == "3s"
    assert split["route"]["weighted_clusters"]["clusters"] == [
        {"name": "inbound-vip|9080|http/v1|reviews.shop.svc.cluster.local", "weight": 80},
        {"name": "inbound-vip|9080|http/v2|reviews.shop.svc.cluster.local", "weight": 20},
    ]
    assert split["route"]["retry_policy"]["retry_on"] == "5xx,retriable-status-codes"
    assert split["route"]["retry_policy"]["retriable_status_codes"] == [503]
    assert split["route"]["retry_policy"]["num_retries"] == 4
    assert "cluster_not_found_response_code" not in split["route"]


@pytest.mark.parametrize(
    ("cors", "expected"),
    [
        pytest.param(
            {
                "allowOrigins": [{"exact": "https://a.example"}, {"regex": ".*\\.b\\.example"}],
                "allowMethods": ["POST"],
                "maxAge": "24h",
                "allowCredentials": False,
            },
            {
                "allow_origin_string_match": [
                    {"exact": "https://a.example"},
                    {"safe_regex": {"regex": ".*\\.b\\.example"}},
                ],
                "allow_methods": "POST",
                "max_age": "86400",
                "allow_credentials": False,
                "forward_not_matching_preflights": True,
            },
            id="string-matches",
        ),
        pytest.param(
            {"allowOrigin": ["https://old.example"], "unmatchedPreflights": "IGNORE"},
            {
                "allow_origin_string_match": [{"exact": "https://old.example"}],
                "forward_not_matching_preflights": False,
            },
            id="deprecated-allow-origin",
        ),
        pytest.param(
            # "*" is a regex here, not the "header is present" shorthand of header matches.
            {"allowOrigins": [{"regex": "*"}], "unmatchedPreflights": "FORWARD"},
            {
                "allow_origin_string_match": [{"safe_regex": {"regex": "*"}}],
                "forward_not_matching_preflights": True,
            },
            id="regex-star-is-literal",
        ),
    ],
)
def test_virtual_service_cors_policy(cors: Doc, expected: Doc) -> None:
    vs = _virtual_service([{"corsPolicy": cors, "route": [{"destination": {"host": "reviews"}}]}])
    [route] = _routes(vs)
    policy = route["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "filter_enabled": {"default_value": {"numerator": 100}},
        **expected,
    }


def test_virtual_service_source_labels_and_other_gateways_are_dropped() -> None:
    vs = _virtual_service(
        [
            {
                "match": [
                    {"sourceLabels": {"app": "x"}},
                    {"gateways": ["ingress"]},
                    {"uri": {"exact": "/kept"}},
                ],
                "route": [{"destination": {"host": "reviews-v1"}}],
            }
        ]
    )
    routes = _routes(vs)
    assert [route["match"] for route in routes] == [{"path": "/kept"}]
    assert routes[0]["route"]["cluster"] == V1


def test_httproutes_win_over_virtual_services() -> None:
    vs = _virtual_service([{"route": [{"destination": {"host": "reviews-v2"}}]}])
    route = http_route("shop", "r", "reviews", [{"backendRefs": [_backend("reviews-v1")]}])
    assert _routes(vs, route)[0]["route"]["cluster"] == V1


def test_a_virtual_service_for_a_gateway_only_is_ignored() -> None:
    vs = _virtual_service([{"route": [{"destination": {"host": "reviews-v2"}}]}])
    vs["spec"]["gateways"] = ["istio-system/ingress"]
    assert _routes(vs)[0]["name"] == "default"


def test_unbound_targets_get_outbound_clusters() -> None:
    from tests.translate.waypoint.fixtures import other

    vs = _virtual_service(
        [
            {
                "route": [
                    {
                        "destination": {
                            "host": "echo.other.svc.cluster.local",
                            "port": {"number": 9080},
                        }
                    }
                ]
            }
        ]
    )
    updates = translate(*shop(), *other(), vs)
    clusters = snapshot(updates)[type_urls.CLUSTER]
    assert "outbound|9080||echo.other.svc.cluster.local" in clusters
    assert "outbound|9080||echo.other.svc.cluster.local" in snapshot(updates)[type_urls.ENDPOINT]


def _tcp_route(*backends: Doc) -> Doc:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1alpha2",
        "kind": "TCPRoute",
        "metadata": meta("shop", "db"),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "db", "port": 5432}],
            "rules": [{"backendRefs": list(backends)}],
        },
    }


DB = "inbound-vip|5432|tcp|db.shop.svc.cluster.local"
DB_CANARY = "inbound-vip|5432|tcp|db-canary.shop.svc.cluster.local"


@pytest.mark.parametrize(
    ("backends", "expected"),
    [
        pytest.param([], {"cluster": DB}, id="no-route"),
        pytest.param([{"name": "db-canary", "port": 5432}], {"cluster": DB_CANARY}, id="one"),
        pytest.param(
            [
                {"name": "db", "port": 5432, "weight": 80},
                {"name": "db-canary", "port": 5432, "weight": 20},
            ],
            {
                "weighted_clusters": {
                    "clusters": [{"name": DB, "weight": 80}, {"name": DB_CANARY, "weight": 20}]
                }
            },
            id="split",
        ),
        pytest.param(
            [{"name": "db", "port": 5432, "weight": 0}],
            {"cluster": "BlackHoleCluster"},
            id="all-zero",
        ),
    ],
)
def test_tcproute_splits_connections(backends: list[Doc], expected: Doc) -> None:
    from tests.translate.waypoint.fixtures import service

    canary = service(
        "shop",
        "db-canary",
        "10.96.1.31",
        [{"name": "tcp", "port": 5432, "targetPort": 5432}],
        selector={"app": "db"},
    )
    docs = [canary, *([_tcp_route(*backends)] if backends else [])]
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [chain] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == DB]
    proxy = chain["filters"][-1]["typed_config"]
    assert {key: proxy[key] for key in expected} == expected


def _tls_route(hostnames: list[str], backend: str) -> Doc:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1alpha2",
        "kind": "TLSRoute",
        "metadata": meta("shop", "db-tls"),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "db", "port": 5432}],
            "hostnames": hostnames,
            "rules": [{"backendRefs": [{"name": backend, "port": 5432}]}],
        },
    }


@pytest.mark.parametrize(
    ("hostnames", "cluster"),
    [
        pytest.param([], DB_CANARY, id="no-hostnames"),
        pytest.param(["db.shop.svc.cluster.local"], DB_CANARY, id="the-service"),
        pytest.param(
            ["db.shop.svc.cluster.local", "db.example.com"], DB_CANARY, id="the-service-and-more"
        ),
        pytest.param(["db.example.com"], DB, id="another-host"),
        pytest.param(["*.shop.svc.cluster.local"], DB, id="wildcard-is-not-the-service"),
    ],
)
def test_tlsroute_comes_before_tcproute_when_it_names_the_service(
    hostnames: list[str], cluster: str
) -> None:
    """istiod's waypoint semantics: no SNI dispatch; a TLSRoute applies to the service's
    port when its hostnames are unset or name exactly that service; TCPRoutes after."""
    from tests.translate.waypoint.fixtures import service

    canary = service(
        "shop",
        "db-canary",
        "10.96.1.31",
        [{"name": "tcp", "port": 5432, "targetPort": 5432}],
        selector={"app": "db"},
    )
    docs = [
        canary,
        _tcp_route({"name": "db", "port": 5432, "weight": 1}),
        _tls_route(hostnames, "db-canary"),
    ]
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [chain] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == DB]
    assert chain["filters"][-1]["typed_config"]["cluster"] == cluster
