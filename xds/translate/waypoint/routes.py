"""Inline route configurations: routing rules as Envoy routes (waypoint.md §6.2).

A waypoint uses no RDS: each HTTP chain carries its route config, named like
its cluster, with one virtual host ``inbound|http|<port>`` matching every
authority (the chain was already selected by VIP and port). The rules come
from Gateway API routes attached to the service, else from a VirtualService,
else one default route to the service's own cluster with Istio's default
retry policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2

from xds.model.gateway import TCPRoute, TLSRoute
from xds.model.networking import ConsistentHash
from xds.translate.waypoint import gateway_api, names, virtual_service
from xds.translate.waypoint.clusters import traffic_policy
from xds.translate.waypoint.inputs import ServiceInfo, ServicePortInfo, WaypointConfig, WaypointMode
from xds.translate.waypoint.protos import (
    boolean,
    duration,
    fraction_per_million,
    metadata,
    present,
    regex,
    typed,
    uint32,
)
from xds.translate.waypoint.protos import exact as exact_string
from xds.translate.waypoint.protos import prefix as prefix_string
from xds.translate.waypoint.protos import safe_regex as regex_string
from xds.translate.waypoint.protos import suffix as suffix_string
from xds.translate.waypoint.route_ir import (
    DEFAULT_RETRY,
    Cors,
    Destination,
    Fault,
    HeaderMatch,
    HeaderOps,
    Match,
    MatchKind,
    PathRewriteKind,
    Retry,
    Rule,
    StringMatch,
)

MAX_DIRECT_RESPONSE_BODY = 1024 * 1024
_FAULT_FILTER = "envoy.filters.http.fault"
_CORS_FILTER = "envoy.filters.http.cors"
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def rules_for(config: WaypointConfig, service: ServiceInfo, port: int) -> list[Rule]:
    """The routing rules of one service port: Gateway API routes win over VirtualServices."""
    identity = config.identity
    rules = gateway_api.route_rules(
        (*config.http_routes, *config.grpc_routes),
        service,
        port,
        identity.namespace,
        identity.domain_suffix,
        config.reference_grants,
    )
    if rules:
        return rules
    chosen = virtual_service.select(
        config.virtual_services, service, identity.namespace, identity.domain_suffix
    )
    if chosen is not None:
        return virtual_service.route_rules(chosen, port, identity.domain_suffix)
    return []


def service_route_config(
    config: WaypointConfig, service: ServiceInfo, port: ServicePortInfo, cluster: str
) -> route_pb2.RouteConfiguration:
    """The inline route config of one service's HTTP chain."""
    rules = rules_for(config, service, port.port)
    builder = RouteBuilder(config, service.hostname, port.port)
    routes = builder.routes(rules) if rules else []
    # A VirtualService whose matches all skip this port behaves like none.
    if not routes:
        routes = [builder.default_route(cluster)]
    return route_pb2.RouteConfiguration(
        name=cluster,
        validate_clusters=boolean(False),
        max_direct_response_body_size_bytes=uint32(MAX_DIRECT_RESPONSE_BODY),
        virtual_hosts=[
            rc.VirtualHost(name=f"inbound|http|{port.port}", domains=["*"], routes=routes)
        ],
    )


def passthrough_route_config(cluster: str) -> route_pb2.RouteConfiguration:
    """Direct-to-pod HTTP: everything to ``cluster`` (encap or passthrough)."""
    return route_pb2.RouteConfiguration(
        name=cluster,
        validate_clusters=boolean(False),
        virtual_hosts=[
            rc.VirtualHost(
                name="inbound|http|0",
                domains=["*"],
                routes=[
                    rc.Route(
                        name="default",
                        match=rc.RouteMatch(prefix="/"),
                        route=rc.RouteAction(
                            cluster=cluster,
                            timeout=duration(0),
                            retry_policy=retry_policy(DEFAULT_RETRY),
                        ),
                    )
                ],
            )
        ],
    )


@dataclass
class RouteBuilder:
    """Turns rules into Envoy routes for one service port of one waypoint."""

    config: WaypointConfig
    # The host the routes serve (decorators, default route); a domain for gateways.
    host: str
    port: int

    def default_route(self, cluster: str) -> rc.Route:
        action = rc.RouteAction(
            cluster=cluster, timeout=duration(0), max_stream_duration=_grpc_timeout(None)
        )
        hashing = self._hash_policy(self.host, None, self.port)
        action.retry_policy.CopyFrom(retry_policy(DEFAULT_RETRY, same_host=hashing is not None))
        if hashing is not None:
            action.hash_policy.append(hashing)
        return rc.Route(
            name="default",
            match=rc.RouteMatch(prefix="/"),
            route=action,
            decorator=self._decorator(),
        )

    def routes(self, rules: Sequence[Rule]) -> list[rc.Route]:
        out: list[rc.Route] = []
        for rule in rules:
            for match in rule.matches or (Match(),):
                out.append(self.route(rule, match))
                if match.is_catch_all:
                    # Envoy matches in order: nothing after a catch-all is reachable.
                    return out
        return out

    def route(self, rule: Rule, match: Match) -> rc.Route:
        route = rc.Route(name=rule.name, match=route_match(match), decorator=self._decorator())
        if rule.config:
            route.metadata.CopyFrom(metadata({names.ISTIO_METADATA: {"config": rule.config}}))
        _header_ops(route, rule.request_headers, rule.response_headers)
        if rule.redirect is not None:
            route.redirect.CopyFrom(self._redirect(rule))
        elif rule.direct_response is not None:
            route.direct_response.status = rule.direct_response.status
            if rule.direct_response.body:
                route.direct_response.body.inline_string = rule.direct_response.body
        elif rule.destinations:
            route.route.CopyFrom(self._action(rule, match))
            if len(rule.destinations) == 1:
                # A lone destination's header edits apply to the whole route.
                only = rule.destinations[0]
                _header_ops(route, only.request_headers, only.response_headers)
        else:
            route.direct_response.status = 500
        if rule.fault is not None:
            route.typed_per_filter_config[_FAULT_FILTER].CopyFrom(typed(_fault(rule.fault)))
        if rule.cors is not None:
            route.typed_per_filter_config[_CORS_FILTER].CopyFrom(typed(cors_policy(rule.cors)))
        return route

    def _decorator(self) -> rc.Decorator:
        return rc.Decorator(operation=f"{self.host}:{self.port}/*")

    def _redirect(self, rule: Rule) -> rc.RedirectAction:
        redirect = rule.redirect
        assert redirect is not None
        action = rc.RedirectAction(
            response_code=_REDIRECT_CODES.get(redirect.status, rc.RedirectAction.MOVED_PERMANENTLY)
        )
        if redirect.scheme:
            action.scheme_redirect = redirect.scheme
        if redirect.host:
            action.host_redirect = redirect.host
        if redirect.port and redirect.port != _DEFAULT_PORTS.get(redirect.scheme or "", -1):
            action.port_redirect = redirect.port
        if redirect.path is not None:
            action.path_redirect = redirect.path
        elif redirect.prefix is not None:
            action.prefix_rewrite = redirect.prefix
        return action

    def _action(self, rule: Rule, match: Match) -> rc.RouteAction:
        action = rc.RouteAction(
            timeout=duration(rule.timeout or 0), max_stream_duration=_grpc_timeout(rule)
        )
        destinations = rule.destinations
        if len(destinations) == 1:
            only = destinations[0]
            action.cluster = self.cluster(only)
            if only.authority:
                action.host_rewrite_literal = only.authority
        else:
            for destination in destinations:
                weight = action.weighted_clusters.clusters.add(
                    name=self.cluster(destination), weight=uint32(destination.weight)
                )
                _weight_headers(weight, destination)
        if rule.gateway_semantics:
            action.cluster_not_found_response_code = rc.RouteAction.INTERNAL_SERVER_ERROR
        first = destinations[0]
        hashing = self._hash_policy(first.host, first.subset, first.port or self.port)
        if hashing is not None:
            action.hash_policy.append(hashing)
        retry = DEFAULT_RETRY if rule.retry is None else rule.retry
        if retry.attempts > 0:
            action.retry_policy.CopyFrom(retry_policy(retry, same_host=hashing is not None))
        _rewrite(action, rule, match)
        for mirror in rule.mirrors:
            action.request_mirror_policies.add(
                cluster=self.cluster(mirror.destination),
                runtime_fraction=base_pb2.RuntimeFractionalPercent(
                    default_value=fraction_per_million(mirror.percent)
                ),
                trace_sampled=boolean(False),
            )
        return action

    def cluster(self, destination: Destination, *, tcp: bool = False) -> str:
        """The cluster a destination resolves to on this waypoint (``tcp``: for a TCP chain)."""
        if destination.invalid:
            return names.UNKNOWN_SERVICE
        target = self.config.service(destination.host)
        port = destination.port
        if port is None:
            if target is not None and len(target.ports) == 1:
                port = target.ports[0].port
            else:
                port = self.port
        sandwich = self.config.identity.mode is WaypointMode.SANDWICH
        if target is None or not target.bound or sandwich:
            return names.outbound_cluster(port, destination.host, destination.subset)
        info = target.port(port)
        http = not tcp and (info is None or info.protocol.is_http or info.protocol.is_sniffed)
        return names.inbound_vip_cluster(port, http, destination.host, destination.subset)

    @classmethod
    def cluster_of(cls, config: WaypointConfig, host: str, port: int) -> str:
        """The cluster this waypoint reaches ``host:port`` through (for filters that
        call a service themselves: an external authorizer, a JWKS server)."""
        return cls(config, host, port).cluster(Destination(host, port))

    def _hash_policy(
        self, host: str, subset: str | None, port: int
    ) -> rc.RouteAction.HashPolicy | None:
        policy = traffic_policy(self.config.destination_rules.get(host), subset, port)
        if policy is None or policy.consistent_hash is None:
            return None
        return hash_policy(policy.consistent_hash)


def tcp_targets(config: WaypointConfig, service: ServiceInfo, port: int) -> list[tuple[str, int]]:
    """Weighted clusters of the TLSRoute or TCPRoute attached to a service port, if any.

    TLSRoutes come first (GEP-1294), then TCPRoutes; the oldest route of a kind wins.
    As istiod's waypoints, a TLSRoute does not dispatch on the SNI: it applies when its
    hostnames are unset or name exactly this service among those it covers, and the
    connection passes through whole (TLS is not terminated). An empty list means no
    route applies. A route whose backends all have weight 0 (or are not allowed)
    yields the black hole: connections fail.
    """

    def attached(route: TCPRoute | TLSRoute) -> bool:
        return route.namespace in (service.namespace, config.identity.namespace) and any(
            gateway_api.attaches(parent, service, port) for parent in route.parent_refs
        )

    candidates: list[TCPRoute | TLSRoute] = [
        route
        for route in config.tls_routes
        if attached(route) and _names_service(route.hostnames, service.hostname)
    ]
    candidates += [route for route in config.tcp_routes if attached(route)]
    if not candidates or not candidates[0].rules:
        return []
    route = candidates[0]
    builder = RouteBuilder(config, service.hostname, port)
    targets = []
    for backend in route.rules[0].backend_refs:
        destination = gateway_api.backend_destination(
            backend,
            route.kind,
            route.namespace,
            config.identity.domain_suffix,
            config.reference_grants,
        )
        if destination.weight > 0 and not destination.invalid:
            targets.append((builder.cluster(destination, tcp=True), destination.weight))
    return targets or [(names.BLACKHOLE, 1)]


def _names_service(hostnames: Sequence[str], service_hostname: str) -> bool:
    if not hostnames:
        return True
    covering = [name for name in hostnames if gateway_api.covers(name, service_hostname)]
    return covering == [service_hostname]


def hash_policy(consistent: ConsistentHash) -> rc.RouteAction.HashPolicy | None:
    """The route hash policy that feeds a DestinationRule's consistent hashing."""
    if consistent.http_header_name:
        return rc.RouteAction.HashPolicy(
            header=rc.RouteAction.HashPolicy.Header(header_name=consistent.http_header_name)
        )
    if consistent.http_cookie_name:
        cookie = rc.RouteAction.HashPolicy.Cookie(
            name=consistent.http_cookie_name, path=consistent.http_cookie_path or ""
        )
        if consistent.http_cookie_ttl is not None:
            cookie.ttl.CopyFrom(duration(consistent.http_cookie_ttl))
        return rc.RouteAction.HashPolicy(cookie=cookie)
    if consistent.use_source_ip:
        return rc.RouteAction.HashPolicy(
            connection_properties=rc.RouteAction.HashPolicy.ConnectionProperties(source_ip=True)
        )
    if consistent.http_query_parameter_name:
        return rc.RouteAction.HashPolicy(
            query_parameter=rc.RouteAction.HashPolicy.QueryParameter(
                name=consistent.http_query_parameter_name
            )
        )
    return None


def retry_policy(retry: Retry, *, same_host: bool = False) -> rc.RetryPolicy:
    """An Envoy retry policy; retries go to another host unless hashing pins one."""
    policy = rc.RetryPolicy(
        retry_on=",".join(retry.retry_on),
        num_retries=uint32(retry.attempts),
        retriable_status_codes=list(retry.status_codes),
    )
    if not same_host:
        policy.retry_host_predicate.add(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=typed(previous_hosts_pb2.PreviousHostsPredicate()),
        )
        policy.host_selection_retry_max_attempts = 5
    if retry.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retry.per_try_timeout))
    if retry.backoff is not None:
        policy.retry_back_off.base_interval.CopyFrom(duration(retry.backoff))
    if retry.retry_remote_localities:
        policy.retry_priority.name = "envoy.retry_priorities.previous_priorities"
        policy.retry_priority.typed_config.CopyFrom(
            typed(previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2))
        )
    return policy


def _grpc_timeout(rule: Rule | None) -> rc.RouteAction.MaxStreamDuration:
    """gRPC deadlines are capped like the route timeout.

    istiod sets the deprecated ``max_grpc_timeout``; this is its replacement.
    """
    limit = duration(rule.timeout if rule is not None and rule.timeout is not None else 0)
    return rc.RouteAction.MaxStreamDuration(grpc_timeout_header_max=limit)


def route_match(match: Match) -> rc.RouteMatch:
    result = rc.RouteMatch()
    path = match.path
    if path is None:
        result.prefix = "/"
    elif path.kind is MatchKind.EXACT:
        result.path = path.value
    elif path.kind is MatchKind.PATH_SEPARATED_PREFIX:
        result.path_separated_prefix = path.value
    elif path.kind is MatchKind.REGEX:
        result.safe_regex.CopyFrom(regex(path.value))
    else:
        result.prefix = path.value or "/"
    if path is not None and path.ignore_case:
        result.case_sensitive.CopyFrom(boolean(False))
    for header in match.headers:
        result.headers.append(header_matcher(header))
    for query in match.query:
        parameter = result.query_parameters.add(name=query.name)
        if query.match.kind is MatchKind.PRESENT:
            parameter.present_match = True
        else:
            parameter.string_match.CopyFrom(string_matcher(query.match))
    return result


def header_matcher(header: HeaderMatch) -> rc.HeaderMatcher:
    result = rc.HeaderMatcher(name=header.name, invert_match=header.invert)
    if header.match.kind is MatchKind.PRESENT:
        result.present_match = True
    else:
        result.string_match.CopyFrom(string_matcher(header.match))
    if header.invert:
        # "without header X: v" also holds when X is absent.
        result.treat_missing_header_as_empty = True
    return result


def string_matcher(match: StringMatch) -> string_pb2.StringMatcher:
    if match.kind is MatchKind.EXACT:
        return exact_string(match.value, ignore_case=match.ignore_case)
    if match.kind in (MatchKind.PREFIX, MatchKind.PATH_SEPARATED_PREFIX):
        return prefix_string(match.value, ignore_case=match.ignore_case)
    if match.kind is MatchKind.SUFFIX:
        return suffix_string(match.value, ignore_case=match.ignore_case)
    if match.kind is MatchKind.PRESENT:
        return present()
    return regex_string(match.value)


def _rewrite(action: rc.RouteAction, rule: Rule, match: Match) -> None:
    rewrite = rule.rewrite
    authority = rewrite.authority if rewrite is not None else None
    if rewrite is not None and rewrite.path_kind is not None:
        if rewrite.path_kind is PathRewriteKind.REGEX:
            action.regex_rewrite.CopyFrom(
                regex_pb2.RegexMatchAndSubstitute(
                    pattern=regex(rewrite.path), substitution=rewrite.regex_substitution
                )
            )
        elif rewrite.path_kind is PathRewriteKind.FULL:
            action.regex_rewrite.CopyFrom(
                regex_pb2.RegexMatchAndSubstitute(
                    pattern=regex("^.*$"), substitution=_escape_substitution(rewrite.path)
                )
            )
        elif (
            rule.gateway_semantics
            and rewrite.path == "/"
            and match.path is not None
            and match.path.kind is MatchKind.PATH_SEPARATED_PREFIX
        ):
            # Stripping the prefix with prefix_rewrite "/" would leave "//rest";
            # keep exactly one slash instead (as istiod does).
            action.regex_rewrite.CopyFrom(
                regex_pb2.RegexMatchAndSubstitute(
                    pattern=regex(f"^{re.escape(match.path.value)}(/?)(.*)"), substitution="/\\2"
                )
            )
        else:
            action.prefix_rewrite = rewrite.path
    if authority:
        action.host_rewrite_literal = authority


def _escape_substitution(text: str) -> str:
    # In RE2 substitutions a backslash starts a group reference.
    return text.replace("\\", "\\\\")


def cors_policy(cors: Cors) -> cors_pb2.CorsPolicy:
    """istiod's CorsPolicy: enabled for every request, lists joined with commas."""
    policy = cors_pb2.CorsPolicy(
        allow_origin_string_match=[string_matcher(origin) for origin in cors.allow_origins],
        allow_methods=",".join(cors.allow_methods),
        allow_headers=",".join(cors.allow_headers),
        expose_headers=",".join(cors.expose_headers),
        filter_enabled=base_pb2.RuntimeFractionalPercent(
            default_value=percent_pb2.FractionalPercent(
                numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
            )
        ),
        forward_not_matching_preflights=boolean(cors.forward_unmatched_preflights),
    )
    if cors.max_age_seconds is not None:
        policy.max_age = str(cors.max_age_seconds)
    if cors.allow_credentials is not None:
        policy.allow_credentials.CopyFrom(boolean(cors.allow_credentials))
    return policy


def _fault(fault: Fault) -> fault_pb2.HTTPFault:
    result = fault_pb2.HTTPFault()
    if fault.delay is not None:
        result.delay.CopyFrom(
            common_fault_pb2.FaultDelay(
                fixed_delay=duration(fault.delay.delay),
                percentage=fraction_per_million(fault.delay.percent),
            )
        )
    if fault.abort is not None:
        abort = fault_pb2.FaultAbort(percentage=fraction_per_million(fault.abort.percent))
        if fault.abort.grpc_status is not None:
            abort.grpc_status = fault.abort.grpc_status
        else:
            abort.http_status = fault.abort.http_status or 500
        result.abort.CopyFrom(abort)
    return result


_UNEDITABLE = ("host",)


def _editable(name: str) -> bool:
    """Envoy refuses to add or remove pseudo-headers and Host through these lists."""
    return not name.startswith(":") and name.lower() not in _UNEDITABLE


def _header_values(ops: HeaderOps) -> list[base_pb2.HeaderValueOption]:
    values = []
    for name, value in ops.set:
        if _editable(name):
            values.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=value),
                    append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                )
            )
    for name, value in ops.add:
        if _editable(name):
            values.append(
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=name, value=value),
                    append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
                )
            )
    return values


def _header_ops(
    target: rc.Route | rc.WeightedCluster.ClusterWeight, request: HeaderOps, response: HeaderOps
) -> None:
    """Header edits on a Route or a weighted cluster (same field names)."""
    target.request_headers_to_add.extend(_header_values(request))
    target.request_headers_to_remove.extend(name for name in request.remove if _editable(name))
    target.response_headers_to_add.extend(_header_values(response))
    target.response_headers_to_remove.extend(name for name in response.remove if _editable(name))


def _weight_headers(weight: rc.WeightedCluster.ClusterWeight, destination: Destination) -> None:
    _header_ops(weight, destination.request_headers, destination.response_headers)
    if destination.authority:
        weight.host_rewrite_literal = destination.authority
