"""Parsing of Gateway API kinds, including the CRD defaults the model applies."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_address

import pytest
from yaml import safe_load as load

from xds.model import ManifestError, parse_object
from xds.model.frozen import FrozenMap
from xds.model.gateway import (
    GATEWAY_GROUP,
    AllowedRoutes,
    BackendRef,
    FromNamespaces,
    Gateway,
    GatewayAddress,
    GatewayClass,
    GRPCMethodMatch,
    GRPCMethodMatchType,
    GRPCRoute,
    HeaderMatch,
    HeaderMatchType,
    HTTPHeader,
    HTTPRoute,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteTimeouts,
    ParentRef,
    PathMatch,
    PathMatchType,
    PathModifier,
    PathModifierType,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    TCPRoute,
    TLSRoute,
    UnsupportedFilter,
    URLRewrite,
)
from xds.model.meta import LabelSelector, SelectorOperator, SelectorRequirement


def test_gateway_class() -> None:
    cls = parse_object(
        load("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: istio-waypoint, labels: {istio.io/waypoint-for: all}}
        spec: {controllerName: istio.io/mesh-controller}
    """)
    )
    assert isinstance(cls, GatewayClass)
    assert cls.namespace == ""
    assert cls.controller_name == "istio.io/mesh-controller"


def test_waypoint_gateway() -> None:
    gateway = parse_object(
        load("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: waypoint, namespace: bookinfo, labels: {istio.io/waypoint-for: service}}
        spec:
          gatewayClassName: istio-waypoint
          addresses: [{value: 10.96.0.50}]
          listeners:
          - {name: mesh, port: 15008, protocol: HBONE}
          - name: proxy
            port: 15088
            protocol: istio.io/PROXY
            allowedRoutes:
              namespaces:
                from: Selector
                selector:
                  matchLabels: {team: a}
                  matchExpressions: [{key: env, operator: In, values: [prod]}]
          - {name: all, port: 80, protocol: HTTP, hostname: "*.example.com",
             allowedRoutes: {namespaces: {from: All}}}
        status:
          addresses:
          - {type: IPAddress, value: 10.96.0.50}
          - {type: Hostname, value: waypoint.bookinfo.svc.cluster.local}
    """)
    )
    assert isinstance(gateway, Gateway)
    assert gateway.gateway_class_name == "istio-waypoint"
    mesh, proxy, everyone = gateway.listeners
    assert (mesh.name, mesh.port, mesh.protocol) == ("mesh", 15008, "HBONE")
    assert mesh.allowed_routes == AllowedRoutes(FromNamespaces.SAME, None)
    assert proxy.allowed_routes == AllowedRoutes(
        FromNamespaces.SELECTOR,
        LabelSelector(
            FrozenMap({"team": "a"}),
            (SelectorRequirement("env", SelectorOperator.IN, ("prod",)),),
        ),
    )
    assert proxy.allowed_routes.selector is not None
    assert proxy.allowed_routes.selector.matches({"team": "a", "env": "prod"})
    assert not proxy.allowed_routes.selector.matches({"team": "a", "env": "dev"})
    assert everyone.allowed_routes.namespaces_from is FromNamespaces.ALL
    assert everyone.hostname == "*.example.com"
    assert gateway.addresses == (GatewayAddress("10.96.0.50"),)
    ip, hostname = gateway.status_addresses
    assert ip.ip == ip_address("10.96.0.50")
    assert (hostname.type, hostname.ip) == ("Hostname", None)


HTTP_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: bookinfo}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  - {name: waypoint, sectionName: mesh}
  hostnames: [reviews.example.com]
  rules:
  - name: split
    backendRefs:
    - {name: reviews-v1, port: 9080, weight: 90}
    - {name: reviews-v2, namespace: other, port: 9080, weight: 10}
  - matches:
    - path: {type: Exact, value: /health}
      headers: [{name: x-user, value: jason}, {name: x-re, value: "a.*", type: RegularExpression}]
      queryParams: [{name: debug, value: "1"}]
      method: GET
    - headers: [{name: x-only, value: "y"}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: "1"}]
        add: [{name: x-add, value: "2"}]
        remove: [x-remove]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [server]}
    - type: URLRewrite
      urlRewrite: {hostname: internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}, percent: 25}
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Thing, name: x}
    backendRefs:
    - name: reviews-v3
      port: 9080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]
    timeouts: {request: 10s, backendRequest: 500ms}
    retry: {codes: [503, 504], attempts: 3, backoff: 100ms}
  - filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        port: 443
        statusCode: 301
        path: {type: ReplaceFullPath, replaceFullPath: /new}
"""


def test_http_route() -> None:
    route = parse_object(load(HTTP_ROUTE))
    assert isinstance(route, HTTPRoute)
    service_parent, gateway_parent = route.parent_refs
    assert service_parent == ParentRef(
        name="reviews", namespace="bookinfo", group="", kind="Service", port=9080
    )
    assert service_parent.is_service
    # Defaults: a Gateway in the Gateway API group, in the route's namespace.
    assert gateway_parent == ParentRef(
        name="waypoint",
        namespace="bookinfo",
        group=GATEWAY_GROUP,
        kind="Gateway",
        section_name="mesh",
    )
    assert not gateway_parent.is_service
    assert route.hostnames == ("reviews.example.com",)

    split, detailed, redirect = route.rules
    assert split.name == "split"
    assert split.matches == (HTTPRouteMatch(PathMatch(PathMatchType.PATH_PREFIX, "/")),)
    assert split.backend_refs == (
        BackendRef(name="reviews-v1", namespace="bookinfo", port=9080, weight=90),
        BackendRef(name="reviews-v2", namespace="other", port=9080, weight=10),
    )
    assert split.timeouts is None and split.retry is None

    exact, headers_only = detailed.matches
    assert exact.path == PathMatch(PathMatchType.EXACT, "/health")
    assert exact.headers == (
        HeaderMatch("x-user", "jason"),
        HeaderMatch("x-re", "a.*", HeaderMatchType.REGULAR_EXPRESSION),
    )
    assert exact.query_params == (HeaderMatch("debug", "1"),)
    assert exact.method == "GET"
    assert headers_only.path == PathMatch()  # CRD default PathPrefix "/"
    assert detailed.filters == (
        RequestHeaderModifier(
            set=(HTTPHeader("x-set", "1"),), add=(HTTPHeader("x-add", "2"),), remove=("x-remove",)
        ),
        ResponseHeaderModifier(remove=("server",)),
        URLRewrite("internal", PathModifier(PathModifierType.REPLACE_PREFIX_MATCH, "/v2")),
        RequestMirror(BackendRef(name="shadow", namespace="bookinfo", port=8080), percent=25),
        UnsupportedFilter("ExtensionRef"),
    )
    (backend,) = detailed.backend_refs
    assert backend.weight == 1
    assert backend.filters == (RequestHeaderModifier(set=(HTTPHeader("a", "b"),)),)
    assert detailed.timeouts == HTTPRouteTimeouts(timedelta(seconds=10), timedelta(seconds=0.5))
    assert detailed.retry == HTTPRouteRetry((503, 504), 3, timedelta(milliseconds=100))

    assert redirect.filters == (
        RequestRedirect(
            scheme="https",
            port=443,
            status_code=301,
            path=PathModifier(PathModifierType.REPLACE_FULL_PATH, "/new"),
        ),
    )
    assert redirect.backend_refs == ()


def test_request_and_response_header_modifiers_differ() -> None:
    request: object = RequestHeaderModifier(remove=("a",))
    assert request != ResponseHeaderModifier(remove=("a",))


def test_grpc_route() -> None:
    route = parse_object(
        load("""
        apiVersion: gateway.networking.k8s.io/v1
        kind: GRPCRoute
        metadata: {name: echo, namespace: ns}
        spec:
          parentRefs: [{group: "", kind: Service, name: echo}]
          rules:
          - matches:
            - method: {service: echo.Echo, method: Ping}
              headers: [{name: x-a, value: b}]
            - method: {type: RegularExpression, service: "echo\\\\..*"}
            backendRefs: [{name: echo-v2, port: 7070}]
          - backendRefs: [{name: echo, port: 7070}]
    """)
    )
    assert isinstance(route, GRPCRoute)
    first, catch_all = route.rules
    exact, regex = first.matches
    assert exact.method == GRPCMethodMatch("echo.Echo", "Ping")
    assert exact.headers == (HeaderMatch("x-a", "b"),)
    assert regex.method == GRPCMethodMatch(
        "echo\\..*", None, GRPCMethodMatchType.REGULAR_EXPRESSION
    )
    assert catch_all.matches == ()  # GRPCRoute has no default match: everything matches
    assert catch_all.backend_refs == (BackendRef(name="echo", namespace="ns", port=7070),)


def test_tcp_and_tls_routes() -> None:
    tcp = parse_object(
        load("""
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TCPRoute
        metadata: {name: db, namespace: ns}
        spec:
          parentRefs: [{group: "", kind: Service, name: db, port: 5432}]
          rules: [{backendRefs: [{name: db-a, port: 5432, weight: 3}, {name: db-b, port: 5432}]}]
    """)
    )
    assert isinstance(tcp, TCPRoute)
    assert tcp.parent_refs[0].is_service and tcp.parent_refs[0].port == 5432
    assert [(b.name, b.weight) for b in tcp.rules[0].backend_refs] == [("db-a", 3), ("db-b", 1)]
    tls = parse_object(
        load("""
        apiVersion: gateway.networking.k8s.io/v1alpha2
        kind: TLSRoute
        metadata: {name: web, namespace: ns}
        spec:
          parentRefs: [{group: "", kind: Service, name: web}]
          hostnames: [web.ns.svc.cluster.local]
          rules: [{name: all, backendRefs: [{name: web-v2, port: 443}]}]
    """)
    )
    assert isinstance(tls, TLSRoute)
    assert tls.hostnames == ("web.ns.svc.cluster.local",)
    assert tls.rules[0].name == "all"
    assert tls.rules[0].backend_refs == (BackendRef(name="web-v2", namespace="ns", port=443),)


def _route(rule: str) -> str:
    return (
        "{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute,"
        f" metadata: {{name: r, namespace: ns}}, spec: {{rules: [{rule}]}}}}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: g}}",
            "Gateway default/g: spec.gatewayClassName: required field is missing",
        ),
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: g},"
            " spec: {gatewayClassName: c, listeners: [{name: l, port: 0, protocol: HBONE}]}}",
            "spec.listeners[0].port: expected an integer 1-65535, got 0",
        ),
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: g},"
            " spec: {gatewayClassName: c},"
            " status: {addresses: [{type: IPAddress, value: waypoint.local}]}}",
            "status.addresses[0].value: expected an IP address for type IPAddress",
        ),
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: g},"
            " spec: {gatewayClassName: c, listeners: [{name: l, port: 1, protocol: HBONE,"
            " allowedRoutes: {namespaces: {from: Selector}}}]}}",
            'spec.listeners[0].allowedRoutes.namespaces.selector: required when "from" is Selector',
        ),
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: Gateway, metadata: {name: g},"
            " spec: {gatewayClassName: c, listeners: [{name: l, port: 1, protocol: HBONE,"
            " allowedRoutes: {namespaces: {from: Selector, selector: {matchExpressions:"
            " [{key: k, operator: In}]}}}}]}}",
            "selector.matchExpressions[0].values: In needs a non-empty list",
        ),
        (
            "{apiVersion: gateway.networking.k8s.io/v1, kind: GatewayClass, metadata: {name: c}}",
            "GatewayClass c: spec.controllerName: required field is missing",
        ),
        (
            _route("{backendRefs: [{name: b, weight: -1}]}"),
            "HTTPRoute ns/r: spec.rules[0].backendRefs[0].weight: expected an integer 0-1000000",
        ),
        (
            _route("{backendRefs: [{port: 80}]}"),
            "spec.rules[0].backendRefs[0].name: required field is missing",
        ),
        (
            _route("{matches: [{path: {type: Glob, value: /x}}]}"),
            "spec.rules[0].matches[0].path.type: expected one of Exact, PathPrefix, Regular",
        ),
        (
            _route("{matches: [{method: FETCH}]}"),
            'spec.rules[0].matches[0].method: expected an HTTP method such as GET, got "FETCH"',
        ),
        (
            _route("{timeouts: {request: 10 seconds}}"),
            'spec.rules[0].timeouts.request: expected a duration such as "10s"',
        ),
        (
            _route("{retry: {codes: [200]}}"),
            "spec.rules[0].retry.codes[0]: expected an HTTP status code 400-599, got 200",
        ),
        (
            _route("{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]}"),
            "spec.rules[0].filters[0].requestRedirect.statusCode: expected one of 301, 302",
        ),
        (
            _route("{filters: [{type: CORS, cors: {maxAge: -1}}]}"),
            "spec.rules[0].filters[0].cors.maxAge: expected a number of seconds >= 0, got -1",
        ),
        (
            _route("{filters: [{requestRedirect: {}}]}"),
            "spec.rules[0].filters[0].type: required field is missing",
        ),
        (
            _route("{filters: [{type: RequestMirror, requestMirror: {}}]}"),
            "spec.rules[0].filters[0].requestMirror.backendRef: required field is missing",
        ),
        (
            _route("{filters: [{type: URLRewrite, urlRewrite: {path: {replaceFullPath: /}}}]}"),
            "spec.rules[0].filters[0].urlRewrite.path.type: required field is missing",
        ),
    ],
)
def test_invalid_gateway_objects(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_object(load(text))
    assert message in str(raised.value)
