"""Parsers for Gateway API kinds (GatewayClass, Gateway, and the route kinds)."""

from __future__ import annotations

from xds.model.gateway import (
    GATEWAY_GROUP,
    IP_ADDRESS_TYPE,
    AllowedRoutes,
    BackendRef,
    CORSFilter,
    FromNamespaces,
    Gateway,
    GatewayAddress,
    GatewayClass,
    GRPCMethodMatch,
    GRPCMethodMatchType,
    GRPCRoute,
    GRPCRouteMatch,
    GRPCRouteRule,
    HeaderMatch,
    HeaderMatchType,
    HTTPFilter,
    HTTPHeader,
    HTTPRoute,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteRule,
    HTTPRouteTimeouts,
    L4RouteRule,
    Listener,
    ParentRef,
    PathMatch,
    PathMatchType,
    PathModifier,
    PathModifierType,
    ReferenceGrant,
    ReferenceGrantFrom,
    ReferenceGrantTo,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    TCPRoute,
    TLSRoute,
    UnsupportedFilter,
    URLRewrite,
)
from xds.model.meta import ObjectMeta, parse_ip
from xds.model.parse.meta import read_label_selector
from xds.model.parse.reader import Reader

_HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def parse_gateway_class(doc: Reader, meta: ObjectMeta) -> GatewayClass:
    spec = doc.obj("spec")
    spec.skip("description")  # free text for people
    return GatewayClass(meta=meta, controller_name=spec.required_string("controllerName"))


def _address(entry: Reader) -> GatewayAddress:
    kind = entry.string("type") or IP_ADDRESS_TYPE
    value = entry.required_string("value")
    if kind == IP_ADDRESS_TYPE and parse_ip(value) is None:
        entry.fail(f'expected an IP address for type IPAddress, got "{value}"', "value")
    return GatewayAddress(value=value, type=kind)


def _listener(listener: Reader) -> Listener:
    namespaces = listener.obj("allowedRoutes").obj("namespaces")
    namespaces_from = namespaces.enum("from", FromNamespaces, FromNamespaces.SAME)
    selector = None
    if namespaces_from is FromNamespaces.SELECTOR:
        if not namespaces.has("selector"):
            namespaces.fail('required when "from" is Selector', "selector")
        selector = read_label_selector(namespaces.obj("selector"))
    return Listener(
        name=listener.required_string("name"),
        port=listener.port("port"),
        protocol=listener.required_string("protocol"),
        hostname=listener.opt_string("hostname"),
        allowed_routes=AllowedRoutes(namespaces_from, selector),
    )


def parse_gateway(doc: Reader, meta: ObjectMeta) -> Gateway:
    spec = doc.obj("spec")
    # Read from the raw object by the Kubernetes waypoint controller (labels and
    # annotations for what it deploys); nothing the model translates.
    spec.skip("infrastructure")
    return Gateway(
        meta=meta,
        gateway_class_name=spec.required_string("gatewayClassName"),
        listeners=tuple(_listener(listener) for listener in spec.items("listeners")),
        addresses=tuple(_address(entry) for entry in spec.items("addresses")),
        status_addresses=tuple(_address(entry) for entry in doc.obj("status").items("addresses")),
    )


# --- Routes -----------------------------------------------------------------


def _parent_ref(ref: Reader, route_namespace: str) -> ParentRef:
    group = ref.opt_string("group")
    return ParentRef(
        name=ref.required_string("name"),
        namespace=ref.string("namespace") or route_namespace,
        group=GATEWAY_GROUP if group is None else group,
        kind=ref.string("kind") or "Gateway",
        section_name=ref.opt_string("sectionName"),
        port=ref.opt_port("port"),
    )


def _backend_ref(ref: Reader, route_namespace: str) -> BackendRef:
    return BackendRef(
        name=ref.required_string("name"),
        namespace=ref.string("namespace") or route_namespace,
        group=ref.string("group"),
        kind=ref.string("kind") or "Service",
        port=ref.opt_port("port"),
        weight=ref.integer("weight", 1, 0, 1_000_000, "an integer 0-1000000"),
        filters=tuple(_filter(f, route_namespace) for f in ref.items("filters")),
    )


def _headers(entries: list[Reader]) -> tuple[HTTPHeader, ...]:
    return tuple(
        HTTPHeader(entry.required_string("name"), entry.string("value")) for entry in entries
    )


def _path_modifier(parent: Reader, key: str) -> PathModifier | None:
    if not parent.has(key):
        return None
    path = parent.obj(key)
    kind = path.opt_enum("type", PathModifierType)
    if kind is None:
        path.fail("required field is missing", "type")
    full = kind is PathModifierType.REPLACE_FULL_PATH
    field = "replaceFullPath" if full else "replacePrefixMatch"
    return PathModifier(kind, path.string(field))


def _filter(entry: Reader, route_namespace: str) -> HTTPFilter:
    kind = entry.required_string("type")
    if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        body = entry.obj(kind[0].lower() + kind[1:])
        cls = RequestHeaderModifier if kind == "RequestHeaderModifier" else ResponseHeaderModifier
        return cls(
            set=_headers(body.items("set")),
            add=_headers(body.items("add")),
            remove=body.strings("remove"),
        )
    if kind == "RequestRedirect":
        body = entry.obj("requestRedirect")
        code = body.integer("statusCode", 302)
        if code not in _REDIRECT_CODES:
            body.fail(f"expected one of 301, 302, 303, 307, 308, got {code}", "statusCode")
        return RequestRedirect(
            scheme=body.opt_string("scheme"),
            hostname=body.opt_string("hostname"),
            path=_path_modifier(body, "path"),
            port=body.opt_port("port"),
            status_code=code,
        )
    if kind == "URLRewrite":
        body = entry.obj("urlRewrite")
        return URLRewrite(hostname=body.opt_string("hostname"), path=_path_modifier(body, "path"))
    if kind == "RequestMirror":
        body = entry.obj("requestMirror")
        if not body.has("backendRef"):
            body.fail("required field is missing", "backendRef")
        fraction = None
        if body.has("fraction"):
            part = body.obj("fraction")
            numerator = part.opt_integer("numerator", 0)
            if numerator is None:
                part.fail("required field is missing", "numerator")
            denominator = part.integer("denominator", 100, 1)
            if numerator > denominator:
                part.fail("numerator must not exceed denominator", "numerator")
            fraction = (numerator, denominator)
        return RequestMirror(
            backend_ref=_backend_ref(body.obj("backendRef"), route_namespace),
            percent=body.opt_integer("percent", 0, 100, "an integer 0-100"),
            fraction=fraction,
        )
    if kind == "CORS":
        body = entry.obj("cors")
        return CORSFilter(
            allow_origins=body.strings("allowOrigins"),
            allow_credentials=body.boolean("allowCredentials"),
            allow_methods=body.strings("allowMethods"),
            allow_headers=body.strings("allowHeaders"),
            expose_headers=body.strings("exposeHeaders"),
            max_age=body.integer("maxAge", 5, 0, None, "a number of seconds >= 0"),
        )
    return UnsupportedFilter(kind)


def _header_matches(entries: list[Reader]) -> tuple[HeaderMatch, ...]:
    return tuple(
        HeaderMatch(
            name=entry.required_string("name"),
            value=entry.string("value"),
            type=entry.enum("type", HeaderMatchType, HeaderMatchType.EXACT),
        )
        for entry in entries
    )


def _http_match(match: Reader) -> HTTPRouteMatch:
    path = match.obj("path")
    method = match.opt_string("method")
    if method is not None and method not in _HTTP_METHODS:
        match.fail(f'expected an HTTP method such as GET, got "{method}"', "method")
    return HTTPRouteMatch(
        # The CRD defaults an absent path to PathPrefix "/".
        path=PathMatch(
            type=path.enum("type", PathMatchType, PathMatchType.PATH_PREFIX),
            value=path.string("value", "/"),
        ),
        headers=_header_matches(match.items("headers")),
        query_params=_header_matches(match.items("queryParams")),
        method=method,
    )


def _http_rule(rule: Reader, route_namespace: str) -> HTTPRouteRule:
    matches = tuple(_http_match(match) for match in rule.items("matches"))
    timeouts = rule.obj("timeouts")
    retry = rule.obj("retry")
    return HTTPRouteRule(
        matches=matches or (HTTPRouteMatch(),),  # CRD default: match everything
        filters=tuple(_filter(f, route_namespace) for f in rule.items("filters")),
        backend_refs=tuple(_backend_ref(ref, route_namespace) for ref in rule.items("backendRefs")),
        timeouts=HTTPRouteTimeouts(
            request=timeouts.opt_duration("request"),
            backend_request=timeouts.opt_duration("backendRequest"),
        )
        if rule.has("timeouts")
        else None,
        retry=HTTPRouteRetry(
            codes=tuple(
                code.integer_value(400, 599, "an HTTP status code 400-599")
                for code in retry.items("codes")
            ),
            attempts=retry.opt_integer("attempts", 0),
            backoff=retry.opt_duration("backoff"),
        )
        if rule.has("retry")
        else None,
        name=rule.opt_string("name"),
    )


def parse_http_route(doc: Reader, meta: ObjectMeta) -> HTTPRoute:
    spec = doc.obj("spec")
    return HTTPRoute(
        meta=meta,
        parent_refs=tuple(_parent_ref(ref, meta.namespace) for ref in spec.items("parentRefs")),
        hostnames=spec.strings("hostnames"),
        rules=tuple(_http_rule(rule, meta.namespace) for rule in spec.items("rules")),
    )


def _grpc_match(match: Reader) -> GRPCRouteMatch:
    method = match.obj("method")
    return GRPCRouteMatch(
        method=GRPCMethodMatch(
            service=method.opt_string("service"),
            method=method.opt_string("method"),
            type=method.enum("type", GRPCMethodMatchType, GRPCMethodMatchType.EXACT),
        )
        if match.has("method")
        else None,
        headers=_header_matches(match.items("headers")),
    )


def parse_grpc_route(doc: Reader, meta: ObjectMeta) -> GRPCRoute:
    spec = doc.obj("spec")
    return GRPCRoute(
        meta=meta,
        parent_refs=tuple(_parent_ref(ref, meta.namespace) for ref in spec.items("parentRefs")),
        hostnames=spec.strings("hostnames"),
        rules=tuple(
            GRPCRouteRule(
                matches=tuple(_grpc_match(match) for match in rule.items("matches")),
                filters=tuple(_filter(f, meta.namespace) for f in rule.items("filters")),
                backend_refs=tuple(
                    _backend_ref(ref, meta.namespace) for ref in rule.items("backendRefs")
                ),
                name=rule.opt_string("name"),
            )
            for rule in spec.items("rules")
        ),
    )


def _l4_rules(spec: Reader, route_namespace: str) -> tuple[L4RouteRule, ...]:
    return tuple(
        L4RouteRule(
            backend_refs=tuple(
                _backend_ref(ref, route_namespace) for ref in rule.items("backendRefs")
            ),
            name=rule.opt_string("name"),
        )
        for rule in spec.items("rules")
    )


def parse_tcp_route(doc: Reader, meta: ObjectMeta) -> TCPRoute:
    spec = doc.obj("spec")
    return TCPRoute(
        meta=meta,
        parent_refs=tuple(_parent_ref(ref, meta.namespace) for ref in spec.items("parentRefs")),
        rules=_l4_rules(spec, meta.namespace),
    )


def parse_tls_route(doc: Reader, meta: ObjectMeta) -> TLSRoute:
    spec = doc.obj("spec")
    return TLSRoute(
        meta=meta,
        parent_refs=tuple(_parent_ref(ref, meta.namespace) for ref in spec.items("parentRefs")),
        hostnames=spec.strings("hostnames"),
        rules=_l4_rules(spec, meta.namespace),
    )


def parse_reference_grant(doc: Reader, meta: ObjectMeta) -> ReferenceGrant:
    spec = doc.obj("spec")
    return ReferenceGrant(
        meta=meta,
        from_=tuple(
            ReferenceGrantFrom(
                group=entry.string("group"),
                kind=entry.required_string("kind"),
                namespace=entry.required_string("namespace"),
            )
            for entry in spec.items("from")
        ),
        to=tuple(
            ReferenceGrantTo(
                group=entry.string("group"),
                kind=entry.required_string("kind"),
                name=entry.opt_string("name") or None,
            )
            for entry in spec.items("to")
        ),
    )
