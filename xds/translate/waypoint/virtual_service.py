"""VirtualService ``http`` rules as routing rules, for services bound to a waypoint.

A waypoint applies a VirtualService when it is mesh-bound (no ``gateways`` or
``mesh`` among them), one of its hosts matches the service, and it lives in
the service's namespace or the waypoint's. Only the first such VirtualService
counts (oldest first, as istiod's ``getVirtualServiceForWaypoint``).

Dropped on purpose, as in istiod: matches with ``sourceLabels`` (a waypoint
cannot know the caller's pod labels, istio#51565), matches for another port,
and matches restricted to gateways other than ``mesh``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from xds.model import networking as vs_model
from xds.model.networking import (
    HeaderOperations,
    RouteDestination,
    StringMatchType,
    VirtualService,
    VirtualServiceMatch,
    VirtualServiceRoute,
)
from xds.translate.waypoint.inputs import ServiceInfo
from xds.translate.waypoint.route_ir import (
    Cors,
    Destination,
    Fault,
    FaultAbort,
    FaultDelay,
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

MESH_GATEWAY = "mesh"
_EPOCH = datetime.min

# google.rpc.Code names, as VirtualService abort.grpcStatus spells them.
GRPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def qualify(host: str, namespace: str, domain_suffix: str) -> str:
    """A VirtualService host or destination as an FQDN (short names are namespace-relative)."""
    if "." in host or host.startswith("*"):
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"


def host_matches(pattern: str, hostname: str) -> bool:
    """Istio host matching: exact, ``*``, or a ``*.suffix`` wildcard."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return hostname.endswith(pattern[1:])
    return pattern == hostname


def is_mesh_bound(virtual_service: VirtualService) -> bool:
    return not virtual_service.gateways or MESH_GATEWAY in virtual_service.gateways


def select(
    virtual_services: Iterable[VirtualService],
    service: ServiceInfo,
    waypoint_namespace: str,
    domain_suffix: str,
) -> VirtualService | None:
    """The VirtualService that routes ``service`` on this waypoint, if any."""
    candidates = [
        vs
        for vs in virtual_services
        if vs.namespace in (service.namespace, waypoint_namespace)
        and is_mesh_bound(vs)
        and any(
            host_matches(qualify(host, vs.namespace, domain_suffix), service.hostname)
            for host in vs.hosts
        )
    ]
    candidates.sort(key=lambda vs: (vs.meta.creation_timestamp or _EPOCH, vs.namespace, vs.name))
    return candidates[0] if candidates else None


def route_rules(virtual_service: VirtualService, port: int, domain_suffix: str) -> list[Rule]:
    """The rules of ``virtual_service`` that apply on ``port``, in order."""
    converter = _Converter(virtual_service, port, domain_suffix)
    rules: list[Rule] = []
    for http in virtual_service.http:
        base = converter.rule(http)
        if not http.match:
            rules.append(base)
            break  # a rule without matches catches everything after it
        matches = [converter.match(match) for match in http.match if converter.applies(match)]
        for match, name in matches:
            rules.append(replace(base, name=_join(base.name, name), matches=(match,)))
        if any(match.is_catch_all for match, _ in matches):
            break
    return rules


def _join(rule_name: str, match_name: str) -> str:
    if rule_name and match_name:
        return f"{rule_name}.{match_name}"
    return rule_name or match_name


class _Converter:
    def __init__(self, virtual_service: VirtualService, port: int, domain_suffix: str) -> None:
        self.vs = virtual_service
        self.port = port
        self.domain_suffix = domain_suffix
        self.config = (
            f"/apis/networking.istio.io/v1/namespaces/{virtual_service.namespace}/"
            f"virtual-service/{virtual_service.name}"
        )

    def applies(self, match: VirtualServiceMatch) -> bool:
        if match.source_labels:
            return False
        if match.port is not None and match.port != self.port:
            return False
        return not match.gateways or MESH_GATEWAY in match.gateways

    def match(self, match: VirtualServiceMatch) -> tuple[Match, str]:
        path = None
        if match.uri is not None:
            path = _string(match.uri, ignore_case=match.ignore_uri_case)
        headers = [
            HeaderMatch(name.lower(), _string(value)) for name, value in match.headers.items()
        ]
        headers += [
            HeaderMatch(name.lower(), _string(value), invert=True)
            for name, value in match.without_headers.items()
        ]
        for pseudo, value in (
            (":method", match.method),
            (":authority", match.authority),
            (":scheme", match.scheme),
        ):
            if value is not None:
                headers.append(HeaderMatch(pseudo, _string(value)))
        query = [QueryMatch(name, _string(value)) for name, value in match.query_params.items()]
        return (
            Match(
                path=path,
                headers=tuple(sorted(headers, key=lambda h: (h.name, h.invert))),
                query=tuple(sorted(query, key=lambda q: q.name)),
                name=match.name,
            ),
            match.name,
        )

    def rule(self, http: VirtualServiceRoute) -> Rule:
        request = response = HeaderOps()
        authority = None
        if http.headers is not None:
            request, authority = _ops(http.headers.request)
            response, _ = _ops(http.headers.response)
        rewrite = None
        if http.rewrite is not None:
            kind: PathRewriteKind | None = None
            path = substitution = ""
            if http.rewrite.uri_regex_rewrite is not None:
                kind = PathRewriteKind.REGEX
                path = http.rewrite.uri_regex_rewrite.match
                substitution = http.rewrite.uri_regex_rewrite.rewrite
            elif http.rewrite.uri:
                kind, path = PathRewriteKind.PREFIX, http.rewrite.uri
            rewrite = Rewrite(
                path_kind=kind,
                path=path,
                regex_substitution=substitution,
                authority=http.rewrite.authority or authority,
            )
        elif authority:
            rewrite = Rewrite(authority=authority)
        redirect = None
        if http.redirect is not None:
            redirect = Redirect(
                scheme=http.redirect.scheme,
                host=http.redirect.authority,
                port=http.redirect.port,
                path=http.redirect.uri,
                status=http.redirect.redirect_code,
            )
        mirrors: tuple[Mirror, ...] = ()
        if http.mirror is not None:
            percent = 100.0 if http.mirror_percentage is None else http.mirror_percentage
            if percent > 0:
                mirrors = (Mirror(self.destination(RouteDestination(http.mirror)), percent),)
        return Rule(
            name=http.name,
            destinations=self.destinations(http.route) if redirect is None else (),
            redirect=redirect,
            rewrite=rewrite,
            request_headers=request,
            response_headers=response,
            timeout=http.timeout,
            retry=_retry(http.retries),
            mirrors=mirrors,
            fault=_fault(http.fault),
            cors=_cors(http.cors),
            config=self.config,
        )

    def destinations(self, routes: tuple[RouteDestination, ...]) -> tuple[Destination, ...]:
        if len(routes) == 1:
            # A lone destination gets all traffic whatever its weight says.
            return (self.destination(routes[0], weight=100),)
        return tuple(self.destination(route) for route in routes if route.weight > 0)

    def destination(self, route: RouteDestination, weight: int | None = None) -> Destination:
        request = response = HeaderOps()
        authority = None
        if route.headers is not None:
            request, authority = _ops(route.headers.request)
            response, _ = _ops(route.headers.response)
        target = route.destination
        return Destination(
            host=qualify(target.host, self.vs.namespace, self.domain_suffix),
            port=target.port,
            subset=target.subset,
            weight=route.weight if weight is None else weight,
            request_headers=request,
            response_headers=response,
            authority=authority,
        )


_MATCH_KINDS = {
    StringMatchType.EXACT: MatchKind.EXACT,
    StringMatchType.PREFIX: MatchKind.PREFIX,
    StringMatchType.REGEX: MatchKind.REGEX,
}


def _string(match: vs_model.StringMatch, *, ignore_case: bool = False) -> StringMatch:
    kind = _MATCH_KINDS[match.type]
    if kind is MatchKind.REGEX and match.value == "*":
        # Istio's shorthand for "the header is present".
        return StringMatch(MatchKind.PRESENT)
    return StringMatch(kind, match.value, ignore_case=ignore_case)


def _ops(operations: HeaderOperations) -> tuple[HeaderOps, str | None]:
    """Header operations, with ``set`` of :authority/host pulled out as a host rewrite."""
    authority = None
    sets = []
    for name, value in operations.set.items():
        if name.lower() in (":authority", "host"):
            authority = value
        else:
            sets.append((name, value))
    return (
        HeaderOps(
            set=tuple(sorted(sets)),
            add=tuple(sorted(operations.add.items())),
            remove=tuple(operations.remove),
        ),
        authority,
    )


def _cors(cors: vs_model.CorsPolicy | None) -> Cors | None:
    if cors is None:
        return None
    return Cors(
        # Origins match literally: no "*"-means-present shorthand as for headers.
        allow_origins=tuple(StringMatch(_MATCH_KINDS[o.type], o.value) for o in cors.allow_origins),
        allow_methods=cors.allow_methods,
        allow_headers=cors.allow_headers,
        expose_headers=cors.expose_headers,
        max_age_seconds=None if cors.max_age is None else int(cors.max_age.total_seconds()),
        allow_credentials=cors.allow_credentials,
        forward_unmatched_preflights=cors.unmatched_preflights
        is not vs_model.UnmatchedPreflights.IGNORE,
    )


def _retry(retries: vs_model.Retries | None) -> Retry | None:
    if retries is None:
        return None
    retry_on: list[str] = []
    codes: list[int] = []
    for item in (retries.retry_on or "").split(","):
        item = item.strip()
        if item.isdigit():
            codes.append(int(item))
        elif item:
            retry_on.append(item)
    if not retry_on and not codes:
        retry_on = [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ]
    if codes and "retriable-status-codes" not in retry_on:
        retry_on.append("retriable-status-codes")
    return Retry(
        attempts=retries.attempts,
        retry_on=tuple(retry_on),
        status_codes=tuple(codes),
        per_try_timeout=retries.per_try_timeout,
        retry_remote_localities=bool(retries.retry_remote_localities),
    )


def _fault(fault: vs_model.Fault | None) -> Fault | None:
    if fault is None:
        return None
    delay = abort = None
    if fault.delay is not None:
        delay = FaultDelay(fault.delay.fixed_delay, _percent(fault.delay.percentage))
    if fault.abort is not None:
        grpc = None
        if fault.abort.grpc_status is not None:
            grpc = GRPC_CODES.get(fault.abort.grpc_status.upper(), 2)
        abort = FaultAbort(
            http_status=fault.abort.http_status,
            grpc_status=grpc,
            percent=_percent(fault.abort.percentage),
        )
    return Fault(delay=delay, abort=abort)


def _percent(value: float | None) -> float:
    return 100.0 if value is None else value
