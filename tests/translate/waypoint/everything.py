"""One mesh using every routing and policy feature the waypoint translator emits.

Shared by the Envoy validation (every snapshot must load into a real Envoy) and the
translator tests that check properties of the whole output.
"""

from __future__ import annotations

from tests.translate.waypoint.fixtures import (
    Doc,
    gateway,
    http_route,
    meta,
    other,
    pod,
    policy,
    service,
    shop,
    to_service,
    to_waypoint,
)


def everything() -> list[Doc]:
    """shop + other with every routing and policy feature."""
    routes = [
        http_route(
            "shop",
            "reviews",
            "reviews",
            [
                {
                    "matches": [
                        {
                            "headers": [{"name": "end-user", "value": "jason"}],
                            "queryParams": [{"name": "v", "value": "2"}],
                            "method": "GET",
                        }
                    ],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {
                                "set": [{"name": "x-a", "value": "1"}],
                                "remove": ["x-b"],
                            },
                        },
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {"add": [{"name": "x-c", "value": "3"}]},
                        },
                        {
                            "type": "RequestMirror",
                            "requestMirror": {
                                "backendRef": {"name": "reviews-v2", "port": 9080},
                                "percent": 10,
                            },
                        },
                        {
                            "type": "CORS",
                            "cors": {
                                "allowOrigins": ["*", "https://*.shop.example", "http://a:*"],
                                "allowCredentials": True,
                                "allowMethods": ["GET"],
                                "exposeHeaders": ["x-c"],
                            },
                        },
                    ],
                    "backendRefs": [{"name": "reviews-v2", "port": 9080}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                    "filters": [
                        {
                            "type": "RequestRedirect",
                            "requestRedirect": {
                                "scheme": "https",
                                "port": 8443,
                                "statusCode": 302,
                                "path": {
                                    "type": "ReplacePrefixMatch",
                                    "replacePrefixMatch": "/new",
                                },
                            },
                        }
                    ],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/strip"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "hostname": "internal",
                                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
                            },
                        }
                    ],
                    "backendRefs": [{"name": "reviews-v1", "port": 9080}],
                },
                {
                    "matches": [{"path": {"type": "RegularExpression", "value": "/r/[a-z]+"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/fixed"}
                            },
                        }
                    ],
                    "backendRefs": [{"name": "reviews-v1", "port": 9080}],
                    "timeouts": {"request": "5s", "backendRequest": "1s"},
                    "retry": {"attempts": 3, "codes": [503], "backoff": "50ms"},
                },
                {
                    "backendRefs": [
                        {"name": "reviews-v1", "port": 9080, "weight": 90},
                        {"name": "reviews-v2", "port": 9080, "weight": 10},
                    ]
                },
            ],
        ),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute",
            "metadata": meta("shop", "ratings"),
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "ratings"}],
                "rules": [
                    {
                        "matches": [{"method": {"service": "shop.Ratings"}}],
                        "backendRefs": [{"name": "ratings", "port": 7070}],
                    },
                    {
                        "matches": [{"method": {"method": "Get"}}],
                        "backendRefs": [{"name": "ratings", "port": 7070}],
                    },
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta("shop", "legacy"),
            "spec": {
                "hosts": ["legacy"],
                "http": [
                    {
                        "name": "fault",
                        "match": [
                            {
                                "uri": {"prefix": "/f"},
                                "ignoreUriCase": True,
                                "withoutHeaders": {"x-skip": {"exact": "1"}},
                            }
                        ],
                        "fault": {
                            "delay": {"fixedDelay": "0.5s", "percentage": {"value": 10}},
                            "abort": {"grpcStatus": "UNAVAILABLE"},
                        },
                        "corsPolicy": {
                            "allowOrigins": [{"prefix": "https://"}, {"regex": "http://.*"}],
                            "allowHeaders": ["x-a", "x-b"],
                            "maxAge": "90s",
                            "allowCredentials": False,
                            "unmatchedPreflights": "IGNORE",
                        },
                        "route": [{"destination": {"host": "legacy", "subset": "a"}}],
                    },
                    {
                        "name": "rest",
                        "timeout": "2s",
                        "retries": {
                            "attempts": 2,
                            "perTryTimeout": "1s",
                            "retryOn": "gateway-error",
                            "retryRemoteLocalities": True,
                        },
                        "rewrite": {"uriRegexRewrite": {"match": "^/v1/(.*)", "rewrite": "/\\1"}},
                        "mirror": {"host": "reviews"},
                        "mirrorPercentage": {"value": 5},
                        "headers": {
                            "request": {"set": {"x-v": "1", ":authority": "legacy.internal"}}
                        },
                        "route": [
                            {"destination": {"host": "legacy", "subset": "a"}, "weight": 70},
                            {
                                "destination": {
                                    "host": "echo.other.svc.cluster.local",
                                    "port": {"number": 9080},
                                },
                                "weight": 30,
                                "headers": {"response": {"remove": ["x-internal"]}},
                            },
                        ],
                    },
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta("shop", "legacy"),
            "spec": {
                "host": "legacy",
                "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user"}}},
                "subsets": [{"name": "a", "labels": {"app": "legacy"}}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta("shop", "reviews"),
            "spec": {
                "host": "reviews",
                "trafficPolicy": {
                    "connectionPool": {
                        "tcp": {
                            "maxConnections": 10,
                            "connectTimeout": "2s",
                            "maxConnectionDuration": "1h",
                        },
                        "http": {
                            "http1MaxPendingRequests": 5,
                            "http2MaxRequests": 20,
                            "maxRetries": 3,
                            "idleTimeout": "30s",
                            "maxRequestsPerConnection": 100,
                            "maxConcurrentStreams": 50,
                        },
                    },
                    "outlierDetection": {
                        "consecutive5xxErrors": 3,
                        "consecutiveGatewayErrors": 2,
                        "interval": "5s",
                        "baseEjectionTime": "30s",
                        "maxEjectionPercent": 50,
                        "minHealthPercent": 20,
                        "splitExternalLocalOriginErrors": True,
                        "consecutiveLocalOriginFailures": 4,
                    },
                    "portLevelSettings": [
                        {"port": {"number": 9999}, "loadBalancer": {"simple": "RANDOM"}}
                    ],
                },
                "subsets": [
                    {
                        "name": "v2",
                        "labels": {"version": "v2"},
                        "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                    }
                ],
            },
        },
    ]
    policies = [
        policy(
            "shop",
            "allow",
            {
                **to_waypoint(),
                "rules": [
                    {
                        "from": [
                            {
                                "source": {
                                    "principals": ["cluster.local/ns/shop/sa/*"],
                                    "notNamespaces": ["evil"],
                                    "ipBlocks": ["10.0.0.0/8"],
                                    "remoteIpBlocks": ["192.0.2.0/24"],
                                    "serviceAccounts": ["front/web"],
                                }
                            }
                        ],
                        "to": [
                            {
                                "operation": {
                                    "methods": ["GET"],
                                    "paths": ["/api/*", "/items/{*}"],
                                    "hosts": ["*.shop.svc.cluster.local"],
                                    "ports": ["9080"],
                                    "notPaths": ["*.secret"],
                                }
                            }
                        ],
                        "when": [
                            {"key": "request.headers[x-team]", "values": ["blue"]},
                            {"key": "destination.ip", "values": ["10.96.0.0/12"]},
                            {"key": "connection.sni", "values": ["*.local"]},
                            {"key": "request.auth.claims[iss]", "values": ["x"]},
                        ],
                    }
                ],
            },
        ),
        policy(
            "shop",
            "deny",
            {
                **to_service("reviews"),
                "action": "DENY",
                "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}],
            },
        ),
        policy("shop", "audit", {**to_waypoint(), "action": "AUDIT", "rules": [{}]}),
        policy(
            "shop",
            "dry",
            {**to_service("db"), "action": "DENY", "rules": [{}]},
            annotations={"istio.io/dry-run": "true"},
        ),
        policy(
            "shop",
            "ext",
            {
                **to_service("ratings"),
                "action": "CUSTOM",
                "provider": {"name": "opa"},
                "rules": [{}],
            },
        ),
    ]
    entries = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta("shop", "external"),
            "spec": {
                "hosts": ["api.example.com"],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
            },
        },
        {
            # Mutual TLS to the external API with a Secret of the waypoint's namespace.
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta("shop", "external"),
            "spec": {
                "host": "api.example.com",
                "trafficPolicy": {
                    "tls": {
                        "mode": "MUTUAL",
                        "credentialName": "api-client",
                        "subjectAltNames": ["api.example.com"],
                    }
                },
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta("shop", "vms"),
            "spec": {
                "hosts": ["vms.shop.internal"],
                "addresses": ["10.200.0.0/24"],
                "location": "MESH_INTERNAL",
                "resolution": "STATIC",
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                "endpoints": [
                    {"address": "10.200.0.5", "labels": {"networking.istio.io/tunnel": "http"}}
                ],
            },
        },
    ]
    tcp = [
        service(
            "shop",
            "db-canary",
            "10.96.1.31",
            [{"name": "tcp", "port": 5432, "targetPort": 5432}],
            selector={"app": "db"},
        ),
        {
            "apiVersion": "gateway.networking.k8s.io/v1alpha2",
            "kind": "TCPRoute",
            "metadata": meta("shop", "db"),
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "db"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "db", "port": 5432, "weight": 9},
                            {"name": "db-canary", "port": 5432, "weight": 1},
                        ]
                    }
                ],
            },
        },
    ]
    workloads = [
        gateway("shop", labels={"istio.io/waypoint-for": "all"}),
        pod("shop", "batch", "10.244.1.90", {"app": "batch"}),
    ]
    return [*shop(), *other(), *routes, *tcp, *policies, *entries, *workloads]
