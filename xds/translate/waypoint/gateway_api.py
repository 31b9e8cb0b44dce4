"""HTTPRoute and GRPCRoute (GAMMA: attached to a Service) as routing rules.

Which routes apply to a service port: those whose ``parentRefs`` name the
Service (or ServiceEntry), on that port or on no port in particular, and that
live in the service's namespace or the waypoint's (a route elsewhere is a
consumer route for its own namespace's clients, which waypoints do not apply).

Rules of all applicable routes are merged and ordered by Gateway API
precedence: exact paths, then longer prefixes, then methods, then more header
and query matches; ties go to the older route, then by namespace/name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from xds.model.gateway import (
    GATEWAY_GROUP,
    BackendRef,
    CORSFilter,
    GRPCMethodMatch,
    GRPCMethodMatchType,
    GRPCRoute,
    GRPCRouteMatch,
    GRPCRouteRule,
    HeaderMatchType,
    HeaderModifier,
    HTTPFilter,
    HTTPRoute,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteRule,
    HTTPRouteTimeouts,
    ParentRef,
    PathMatchType,
    PathModifierType,
    ReferenceGrant,
    ReferenceGrantFrom,
    RequestHeaderModifier,
    RequestMirror,
    RequestRedirect,
    ResponseHeaderModifier,
    UnsupportedFilter,
    URLRewrite,
    reference_permitted,
)
from xds.model.gateway import HeaderMatch as GatewayHeaderMatch
from xds.model.networking import NETWORKING_GROUP
from xds.translate.waypoint.inputs import GatewayListener, ServiceInfo
from xds.translate.waypoint.route_ir import (
    DEFAULT_RETRY_ON,
    Cors,
    Destination,
    DirectResponse,
    HeaderMatch,
    HeaderOps,
    Match,
    MatchKind,
    Mirror,
    PathRewriteKind,
    QueryMatch,
    Redirect,
    Retry,
    Rewrite,
    Rule,
    StringMatch,
)

_EPOCH = datetime.min


def attaches(parent: ParentRef, service: ServiceInfo, port: int | None) -> bool:
    """Whether ``parent`` names ``service`` (and ``port``, when both are given)."""
    if parent.port is not None and port is not None and parent.port != port:
        return False
    if parent.namespace != service.namespace or parent.name != service.name:
        return False
    if service.kind == "Service":
        return parent.group == "" and parent.kind == "Service"
    return parent.group == NETWORKING_GROUP and parent.kind == "ServiceEntry"


def route_rules(
    routes: Iterable[HTTPRoute | GRPCRoute],
    service: ServiceInfo,
    port: int,
    waypoint_namespace: str,
    domain_suffix: str,
    grants: Sequence[ReferenceGrant],
) -> list[Rule]:
    """The ordered rules of every route attached to ``service`` on ``port`` (GAMMA);
    ``grants`` may permit backends in other namespaces."""
    attached = [
        route
        for route in routes
        if route.namespace in (service.namespace, waypoint_namespace)
        and any(attaches(parent, service, port) for parent in route.parent_refs)
    ]
    return ranked_rules(attached, service, port, domain_suffix, grants)


def gateway_listener_rules(
    routes: Iterable[HTTPRoute | GRPCRoute],
    namespace: str,
    name: str,
    listener: GatewayListener,
    domain_suffix: str,
    grants: Sequence[ReferenceGrant],
) -> dict[str, list[Rule]]:
    """Routes attached to a Gateway listener, as ordered rules per virtual-host domain.

    Only routes from the Gateway's namespace are accepted (allowedRoutes
    ``Same``, the default). A route's hostnames are intersected with the
    listener's; without either, the route serves every host (``*``).
    """
    by_domain: dict[str, list[HTTPRoute | GRPCRoute]] = {}
    for route in routes:
        if route.namespace != namespace or not any(
            _attaches_listener(parent, namespace, name, listener) for parent in route.parent_refs
        ):
            continue
        for domain in _domains(route.hostnames, listener.hostname):
            by_domain.setdefault(domain, []).append(route)
    return {
        domain: ranked_rules(attached, None, listener.port, domain_suffix, grants)
        for domain, attached in sorted(by_domain.items())
    }


def _attaches_listener(
    parent: ParentRef, namespace: str, name: str, listener: GatewayListener
) -> bool:
    return (
        parent.group == GATEWAY_GROUP
        and parent.kind == "Gateway"
        and parent.name == name
        and parent.namespace == namespace
        and parent.section_name in (None, listener.name)
        and parent.port in (None, listener.port)
    )


def _domains(route_hostnames: Sequence[str], listener_hostname: str | None) -> list[str]:
    if not route_hostnames:
        return [listener_hostname or "*"]
    if listener_hostname is None:
        return list(route_hostnames)
    out = []
    for hostname in route_hostnames:
        if covers(listener_hostname, hostname):
            out.append(hostname)
        elif covers(hostname, listener_hostname):
            out.append(listener_hostname)
    return out


def covers(pattern: str, hostname: str) -> bool:
    """Gateway API hostname matching: ``*.example.com`` covers its subdomains."""
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:]) and not hostname.startswith("*.")
    return pattern == hostname


def ranked_rules(
    routes: Iterable[HTTPRoute | GRPCRoute],
    service: ServiceInfo | None,
    port: int,
    domain_suffix: str,
    grants: Sequence[ReferenceGrant],
) -> list[Rule]:
    """All rules of ``routes``, ordered by Gateway API precedence."""
    ranked: list[tuple[tuple[object, ...], Rule]] = []
    for route in routes:
        converter = _Converter(route, service, port, domain_suffix, grants)
        created = (
            route.meta.creation_timestamp.replace(tzinfo=None)
            if route.meta.creation_timestamp is not None
            else _EPOCH
        )
        for rule_index, (sort_key, rule) in enumerate(converter.rules()):
            ranked.append(((*sort_key, created, route.namespace, route.name, rule_index), rule))
    ranked.sort(key=lambda item: item[0])
    return [rule for _, rule in ranked]


def _precedence(match: Match, has_method: bool) -> tuple[object, ...]:
    """Gateway API match precedence as a sort key (smaller sorts first)."""
    path = match.path
    if path is None:
        rank, length = 3, 0
    elif path.kind is MatchKind.EXACT:
        rank, length = 0, len(path.value)
    elif path.kind is MatchKind.REGEX:
        rank, length = 2, len(path.value)
    else:
        rank, length = 1, len(path.value)
    return (rank, -length, not has_method, -len(match.headers), -len(match.query))


@dataclass
class _Converter:
    route: HTTPRoute | GRPCRoute
    # The Service the route is attached to (GAMMA); None for a Gateway parent.
    service: ServiceInfo | None
    port: int
    domain_suffix: str
    grants: Sequence[ReferenceGrant]

    @property
    def config_path(self) -> str:
        kind = self.route.kind.lower()
        return (
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.route.namespace}/"
            f"{kind}/{self.route.name}"
        )

    def rules(self) -> Iterable[tuple[tuple[object, ...], Rule]]:
        """Each (match, rule) pair as a single-match rule with its precedence."""
        route = self.route
        rules: Sequence[HTTPRouteRule | GRPCRouteRule] = route.rules
        for index, rule in enumerate(rules):
            name = rule.name or f"{route.namespace}.{route.name}.{index}"
            timeouts = retry = None
            if isinstance(rule, HTTPRouteRule):
                timeouts, retry = rule.timeouts, rule.retry
            base = self._base_rule(name, rule.filters, rule.backend_refs, timeouts, retry)
            matches: Sequence[HTTPRouteMatch | GRPCRouteMatch] = rule.matches
            if matches:
                for match in matches:
                    converted, has_method = self._match(match)
                    yield _precedence(converted, has_method), replace(base, matches=(converted,))
            else:
                yield _precedence(Match(), False), base

    def _match(self, match: HTTPRouteMatch | GRPCRouteMatch) -> tuple[Match, bool]:
        headers = [_header(header) for header in match.headers]
        if isinstance(match, GRPCRouteMatch):
            path = _grpc_path(match.method) if match.method is not None else None
            return Match(path=path, headers=tuple(sorted(headers, key=lambda h: h.name))), False
        path_match: StringMatch | None = None
        if match.path is not None:
            value = match.path.value
            if match.path.type is PathMatchType.EXACT:
                path_match = StringMatch(MatchKind.EXACT, value)
            elif match.path.type is PathMatchType.REGULAR_EXPRESSION:
                path_match = StringMatch(MatchKind.REGEX, value)
            elif value.rstrip("/") == "":
                path_match = StringMatch(MatchKind.PREFIX, "/")
            else:
                # "/foo/" and "/foo" mean the same to Gateway API: segment-wise.
                path_match = StringMatch(MatchKind.PATH_SEPARATED_PREFIX, value.rstrip("/"))
        if match.method:
            headers.append(HeaderMatch(":method", StringMatch(MatchKind.EXACT, match.method)))
        query = [QueryMatch(param.name, _string(param)) for param in match.query_params]
        return Match(
            path=path_match,
            headers=tuple(sorted(headers, key=lambda h: h.name)),
            query=tuple(sorted(query, key=lambda q: q.name)),
        ), bool(match.method)

    def _base_rule(
        self,
        name: str,
        filters: Sequence[HTTPFilter],
        backends: Sequence[BackendRef],
        timeouts: HTTPRouteTimeouts | None,
        retry: HTTPRouteRetry | None,
    ) -> Rule:
        rule = Rule(name=name, config=self.config_path, gateway_semantics=True)
        for item in filters:
            if isinstance(item, UnsupportedFilter):
                # Upstream fails the rule ("unsupported filter type"); answering
                # 500 is the visible, safe equivalent.
                return Rule(
                    name=name,
                    config=self.config_path,
                    gateway_semantics=True,
                    direct_response=DirectResponse(500),
                )
            rule = self._apply_filter(rule, item)
        if rule.redirect is not None:
            return rule
        destinations = tuple(self._destination(backend) for backend in backends)
        if not backends and self.service is not None:
            # GAMMA: a rule without backends forwards to the Service it is attached to.
            destinations = (Destination(self.service.hostname, self.port),)
        if not any(destination.weight > 0 for destination in destinations):
            return replace(rule, direct_response=DirectResponse(500))
        rule = replace(rule, destinations=tuple(d for d in destinations if d.weight > 0))
        return _with_timeouts(rule, timeouts, retry)

    def _apply_filter(self, rule: Rule, item: HTTPFilter) -> Rule:
        if isinstance(item, RequestHeaderModifier):
            return replace(rule, request_headers=_header_ops(item))
        if isinstance(item, ResponseHeaderModifier):
            return replace(rule, response_headers=_header_ops(item))
        if isinstance(item, RequestRedirect):
            path = prefix = None
            if item.path is not None:
                if item.path.type is PathModifierType.REPLACE_FULL_PATH:
                    path = item.path.value
                else:
                    prefix = item.path.value
            return replace(
                rule,
                redirect=Redirect(
                    scheme=item.scheme,
                    host=item.hostname,
                    port=item.port,
                    path=path,
                    prefix=prefix,
                    status=item.status_code,
                ),
            )
        if isinstance(item, URLRewrite):
            kind: PathRewriteKind | None = None
            value = ""
            if item.path is not None:
                value = item.path.value
                kind = (
                    PathRewriteKind.FULL
                    if item.path.type is PathModifierType.REPLACE_FULL_PATH
                    else PathRewriteKind.PREFIX
                )
            return replace(
                rule, rewrite=Rewrite(path_kind=kind, path=value, authority=item.hostname)
            )
        if isinstance(item, RequestMirror):
            percent = 100.0
            if item.percent is not None:
                percent = float(item.percent)
            elif item.fraction is not None and item.fraction[1]:
                percent = 100.0 * item.fraction[0] / item.fraction[1]
            if percent <= 0:
                return rule
            mirror = Mirror(self._destination(item.backend_ref), percent)
            return replace(rule, mirrors=(*rule.mirrors, mirror))
        if isinstance(item, CORSFilter):
            return replace(rule, cors=cors_policy(item))
        return rule

    def _destination(self, backend: BackendRef) -> Destination:
        return backend_destination(
            backend, self.route.kind, self.route.namespace, self.domain_suffix, self.grants
        )


# "*" allows any origin, but only a well-formed one (scheme://host[:port]), as istiod.
_ANY_ORIGIN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$"
_REGEX_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def origin_match(origin: str) -> StringMatch:
    """A Gateway API origin (exact, ``*``, or with ``*`` wildcards) as a string match."""
    if origin == "*":
        return StringMatch(MatchKind.REGEX, _ANY_ORIGIN)
    if "*" not in origin:
        return StringMatch(MatchKind.EXACT, origin)
    if origin.count("*") == 1 and origin.endswith("*"):
        return StringMatch(MatchKind.PREFIX, origin[:-1])
    pattern = _REGEX_META.sub(r"\\\1", origin).replace("\\*", ".*")
    return StringMatch(MatchKind.REGEX, f"^{pattern}$")


def cors_policy(item: CORSFilter) -> Cors:
    """istiod's conversion: a filter's preflights from other origins never reach the
    backend, and credentials are only ever allowed, never denied explicitly."""
    return Cors(
        allow_origins=tuple(origin_match(origin) for origin in item.allow_origins if origin),
        allow_methods=item.allow_methods,
        allow_headers=item.allow_headers,
        expose_headers=item.expose_headers,
        max_age_seconds=item.max_age if item.max_age > 0 else None,
        allow_credentials=True if item.allow_credentials else None,
        forward_unmatched_preflights=False,
    )


def backend_destination(
    backend: BackendRef,
    route_kind: str,
    route_namespace: str,
    domain_suffix: str,
    grants: Sequence[ReferenceGrant],
) -> Destination:
    """A backendRef as a destination; unusable references (an unknown kind, a backend in
    another namespace that no ReferenceGrant there opens to the route) are ``invalid``."""
    request = response = HeaderOps()
    for item in backend.filters:
        if isinstance(item, RequestHeaderModifier):
            request = _header_ops(item)
        elif isinstance(item, ResponseHeaderModifier):
            response = _header_ops(item)
    if backend.kind == "Service" and backend.group == "":
        host = f"{backend.name}.{backend.namespace}.svc.{domain_suffix}"
    elif backend.kind == "Hostname" and backend.group == NETWORKING_GROUP:
        host = backend.name
    else:
        return Destination(backend.name, backend.port, weight=backend.weight, invalid=True)
    source = ReferenceGrantFrom(GATEWAY_GROUP, route_kind, route_namespace)
    # As istiod: any backend named in another namespace needs a grant there.
    invalid = not reference_permitted(
        grants, source, backend.group, backend.kind, backend.namespace, backend.name
    )
    return Destination(
        host,
        backend.port,
        weight=backend.weight,
        request_headers=request,
        response_headers=response,
        invalid=invalid,
    )


def _with_timeouts(
    rule: Rule, timeouts: HTTPRouteTimeouts | None, retry: HTTPRouteRetry | None
) -> Rule:
    converted: Retry | None = None
    if retry is not None:
        codes = tuple(sorted(set(retry.codes)))
        retry_on = DEFAULT_RETRY_ON + (("retriable-status-codes",) if codes else ())
        converted = Retry(
            attempts=2 if retry.attempts is None else retry.attempts,
            retry_on=retry_on,
            status_codes=codes,
            backoff=retry.backoff,
        )
    timeout = None
    if timeouts is not None:
        timeout = timeouts.request
        if timeouts.backend_request is not None:
            if converted is not None and converted.attempts > 0:
                converted = replace(converted, per_try_timeout=timeouts.backend_request)
            elif timeout is None:
                timeout = timeouts.backend_request
    return replace(rule, timeout=timeout, retry=converted)


def _header_ops(modifier: HeaderModifier) -> HeaderOps:
    return HeaderOps(
        set=tuple((header.name, header.value) for header in modifier.set),
        add=tuple((header.name, header.value) for header in modifier.add),
        remove=tuple(modifier.remove),
    )


def _string(match: GatewayHeaderMatch) -> StringMatch:
    kind = MatchKind.REGEX if match.type is HeaderMatchType.REGULAR_EXPRESSION else MatchKind.EXACT
    return StringMatch(kind, match.value)


def _header(match: GatewayHeaderMatch) -> HeaderMatch:
    return HeaderMatch(match.name.lower(), _string(match))


def _grpc_path(method: GRPCMethodMatch) -> StringMatch | None:
    """A gRPC method match as a path match on ``/<service>/<method>``."""
    if method.type is GRPCMethodMatchType.REGULAR_EXPRESSION:
        return StringMatch(
            MatchKind.REGEX, f"/{method.service or '[^/]+'}/{method.method or '[^/]+'}"
        )
    if method.service and method.method:
        return StringMatch(MatchKind.EXACT, f"/{method.service}/{method.method}")
    if method.service:
        return StringMatch(MatchKind.PREFIX, f"/{method.service}/")
    if method.method:
        return StringMatch(MatchKind.REGEX, f"/[^/]+/{re.escape(method.method)}")
    return None
