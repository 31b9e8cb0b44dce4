"""AuthorizationPolicy as Envoy RBAC on waypoint chains (waypoint.md §7).

Which policies apply: waypoints ignore ``selector`` policies and take those
whose ``targetRefs`` name the waypoint's Gateway (every chain), its
GatewayClass from the root namespace (every chain), or a bound Service or
ServiceEntry in the policy's own namespace (only that service's chains).

How identities are matched: the caller's SPIFFE id is not the TLS peer of
main_internal (that is connect_terminate's), so it travels in the filter state
``io.istio.peer_principal`` and RBAC matches it there, as istiod does with
``useAuthenticated=false``. ``ipBlocks`` match the caller's address that
travels the same way (``original_dst.remote_ip``), so an ``x-forwarded-for``
header cannot forge it; ``remoteIpBlocks`` follow Envoy's ``remote_ip``.

What cannot be enforced fails closed: in an ALLOW (or AUDIT) policy a
condition the waypoint cannot evaluate never matches (so it allows less); in
a DENY policy it is dropped (so it denies more). That covers HTTP-only fields
on TCP chains, identities in sandwich mode (the gateway never sees them) and
JWT attributes (no RequestAuthentication support).

CUSTOM policies go to the external authorizer the mesh config names
(``ext_authz.py``), on HTTP chains of HBONE and PROXY waypoints. Where that cannot
be (a TCP chain, a sandwiched gateway, an unknown provider or one whose service is
not in the mesh, a dry-run policy) they deny what their rules match, as istiod's
"bad CUSTOM action" rules do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Final, Generic, TypeAlias, TypedDict, TypeVar

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import address_pb2 as address_matcher_pb2
from envoy.type.matcher.v3 import filter_state_pb2, path_pb2, string_pb2
from envoy.type.matcher.v3 import metadata_pb2 as metadata_matcher_pb2
from envoy.type.matcher.v3 import value_pb2 as value_matcher_pb2
from google.protobuf import wrappers_pb2

from xds.core.v3 import cidr_pb2
from xds.model.security import (
    AuthorizationAction,
    AuthorizationPolicy,
    Condition,
    Operation,
    Source,
)
from xds.translate.waypoint import ext_authz, jwt, names, routes
from xds.translate.waypoint.inputs import (
    ServiceInfo,
    WaypointConfig,
    WaypointMode,
)
from xds.translate.waypoint.protos import (
    exact,
    extension,
    prefix,
    present,
    safe_regex,
    suffix,
    typed,
)
from xds.translate.waypoint.targeting import targets_service, targets_waypoint


class _Always(Enum):
    """A condition that is always true (dropped from an AND) or never true."""

    ALWAYS = "always"
    NEVER = "never"


# Final, so that mypy narrows ``term is ALWAYS`` to the member.
ALWAYS: Final = _Always.ALWAYS
NEVER: Final = _Always.NEVER
# A term of a rule's principal or permission side: an rbac message, or ALWAYS/NEVER.
PrincipalTerm: TypeAlias = rbac_pb2.Principal | _Always
PermissionTerm: TypeAlias = rbac_pb2.Permission | _Always
# Either side, for what works the same on both (``_Combinators`` says how).
Side = TypeVar("Side", rbac_pb2.Principal, rbac_pb2.Permission)


# --- which policies apply ---------------------------------------------------------


def attached_policies(
    config: WaypointConfig, service: ServiceInfo | None
) -> list[AuthorizationPolicy]:
    """Policies for a chain: waypoint-wide ones, plus the service's own."""
    found = [
        policy
        for policy in config.policies
        if policy.selector is None
        and (
            targets_waypoint(policy, config.identity)
            or (service is not None and targets_service(policy, service))
        )
    ]
    return sorted(found, key=lambda policy: (policy.namespace, policy.name))


# --- filters ------------------------------------------------------------------------


# Enforced in this order, as istiod does: audit logs everything, a deny beats an allow.
_ORDER = (
    (rbac_pb2.RBAC.LOG, (AuthorizationAction.AUDIT,)),
    (rbac_pb2.RBAC.DENY, (AuthorizationAction.CUSTOM, AuthorizationAction.DENY)),
    (rbac_pb2.RBAC.ALLOW, (AuthorizationAction.ALLOW,)),
)


ACTION_ORDER = tuple(action for action, _ in _ORDER)


def filter_name(action: rbac_pb2.RBAC.Action, *, http: bool) -> str:
    """One filter per action, each with its own name so routes can override it."""
    label = {rbac_pb2.RBAC.LOG: "audit", rbac_pb2.RBAC.DENY: "deny", rbac_pb2.RBAC.ALLOW: "allow"}[
        action
    ]
    return f"envoy.filters.{'http' if http else 'network'}.rbac.{label}"


def http_configs(
    config: WaypointConfig, service: ServiceInfo | None, *, external: bool = False
) -> dict[str, http_rbac_pb2.RBAC]:
    """The HTTP RBAC configs of a chain (or virtual host), keyed by filter name, in order.

    ``external``: CUSTOM policies an external authorizer takes are left out."""
    return {
        filter_name(action, http=True): http_rbac_pb2.RBAC(**fields)
        for action, fields in _filter_fields(config, service, http=True, external=external)
    }


def http_filters(config: WaypointConfig, service: ServiceInfo | None) -> list[hcm_pb2.HttpFilter]:
    """The authorization filters of an HTTP chain: external authorizers first (as
    istiod orders them), then audit, deny and allow."""
    external = config.identity.mode is not WaypointMode.SANDWICH
    own = http_configs(config, service, external=external)
    return [
        *(_external_filters(config, service) if external else []),
        *(hcm_pb2.HttpFilter(name=name, typed_config=typed(rbac)) for name, rbac in own.items()),
    ]


def _provider_cluster(config: WaypointConfig, policy: AuthorizationPolicy) -> str | None:
    """The cluster of the authorizer an enforced CUSTOM policy names, when it can be used."""
    if policy.action is not AuthorizationAction.CUSTOM or policy.dry_run:
        return None
    provider = config.extension_provider(policy.provider or "")
    if provider is None:
        return None
    target = config.service(provider.hostname)
    if target is None or provider.port not in {port.port for port in target.ports}:
        return None  # Envoy would refuse a filter naming a cluster that does not exist
    return routes.RouteBuilder.cluster_of(config, provider.hostname, provider.port)


def _external_filters(
    config: WaypointConfig, service: ServiceInfo | None
) -> list[hcm_pb2.HttpFilter]:
    by_provider: dict[str, tuple[str, list[AuthorizationPolicy]]] = {}
    for policy in attached_policies(config, service):
        cluster = _provider_cluster(config, policy)
        if cluster is not None:
            by_provider.setdefault(policy.provider or "", (cluster, []))[1].append(policy)
    context = _Context(mode=config.identity.mode, http=True)
    out: list[hcm_pb2.HttpFilter] = []
    for name, (cluster, policies) in sorted(by_provider.items()):
        provider = config.extension_provider(name)
        assert provider is not None  # _provider_cluster found it
        # Shadow rules only record which CUSTOM rule matched; ext_authz decides.
        shadow = _rbac(rbac_pb2.RBAC.DENY, policies, context, ext_authz.policy_prefix(name))
        out.append(
            hcm_pb2.HttpFilter(
                name=f"envoy.filters.http.rbac.custom.{name}",
                typed_config=typed(
                    http_rbac_pb2.RBAC(
                        shadow_rules=shadow, shadow_rules_stat_prefix=ext_authz.SHADOW_STAT_PREFIX
                    )
                ),
            )
        )
        out.append(ext_authz.http_filter(provider, cluster))
    return out


def network_filters(
    config: WaypointConfig, service: ServiceInfo | None
) -> list[listener_components_pb2.Filter]:
    return [
        listener_components_pb2.Filter(
            name=filter_name(action, http=False),
            typed_config=typed(network_rbac_pb2.RBAC(stat_prefix="tcp.", **fields)),
        )
        for action, fields in _filter_fields(config, service, http=False)
    ]


class _RbacFields(TypedDict, total=False):
    """The fields the HTTP and the network RBAC filters share."""

    rules: rbac_pb2.RBAC
    shadow_rules: rbac_pb2.RBAC
    shadow_rules_stat_prefix: str


def _filter_fields(
    config: WaypointConfig, service: ServiceInfo | None, *, http: bool, external: bool = False
) -> list[tuple[rbac_pb2.RBAC.Action, _RbacFields]]:
    policies = [
        policy
        for policy in attached_policies(config, service)
        if not (external and _provider_cluster(config, policy) is not None)
    ]
    context = _Context(mode=config.identity.mode, http=http)
    out = []
    for action, sources in _ORDER:
        chosen = [policy for policy in policies if policy.action in sources]
        if not chosen:
            continue
        enforced = [policy for policy in chosen if not policy.dry_run]
        dry = [policy for policy in chosen if policy.dry_run]
        fields: _RbacFields = {}
        if enforced:
            fields["rules"] = _rbac(action, enforced, context)
        if dry:
            fields["shadow_rules"] = _rbac(action, dry, context)
            fields["shadow_rules_stat_prefix"] = (
                "istio_dry_run_allow_" if action == rbac_pb2.RBAC.ALLOW else "istio_dry_run_deny_"
            )
        out.append((action, fields))
    return out


def _rbac(
    action: rbac_pb2.RBAC.Action,
    policies: Sequence[AuthorizationPolicy],
    context: _Context,
    prefix: str = "",
) -> rbac_pb2.RBAC:
    """One RBAC rule set (policy names start with ``prefix``). An ALLOW set with no
    policy left denies everything."""
    result = rbac_pb2.RBAC(action=action)
    for policy in policies:
        strict = policy.action in (AuthorizationAction.ALLOW, AuthorizationAction.AUDIT)
        for index, rule in enumerate(policy.rules):
            translated = _Rule(policy, context, strict).build(
                rule.sources, rule.operations, rule.when
            )
            if translated is not None:
                result.policies[
                    f"{prefix}ns[{policy.namespace}]-policy[{policy.name}]-rule[{index}]"
                ].CopyFrom(translated)
    return result


# --- one rule -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    mode: WaypointMode
    http: bool

    @property
    def identity(self) -> bool:
        """Whether the caller's SPIFFE id reaches this waypoint (not in sandwich mode)."""
        return self.mode is not WaypointMode.SANDWICH


@dataclass
class _Rule:
    policy: AuthorizationPolicy
    context: _Context
    strict: bool

    @property
    def unknown(self) -> _Always:
        """What an unenforceable condition becomes: false for ALLOW, true for DENY."""
        return NEVER if self.strict else ALWAYS

    def build(
        self, sources: Sequence[Source], operations: Sequence[Operation], when: Sequence[Condition]
    ) -> rbac_pb2.Policy | None:
        principal_terms: list[PrincipalTerm] = [
            _any_of([self.source(s) for s in sources], _or_ids) if sources else ALWAYS
        ]
        permission_terms: list[PermissionTerm] = [
            _any_of([self.operation(o) for o in operations], _or_rules) if operations else ALWAYS
        ]
        for condition in when:
            principal_term, permission_term = self.condition(condition)
            principal_terms.append(principal_term)
            permission_terms.append(permission_term)
        principal = _all_of(principal_terms, _and_ids)
        permission = _all_of(permission_terms, _and_rules)
        if principal is NEVER or permission is NEVER:
            return None  # this rule can never match
        return rbac_pb2.Policy(
            principals=[rbac_pb2.Principal(any=True) if principal is ALWAYS else principal],
            permissions=[rbac_pb2.Permission(any=True) if permission is ALWAYS else permission],
        )

    # Sources ---------------------------------------------------------------------

    def source(self, source: Source) -> PrincipalTerm:
        return _all_of(
            [
                self._values(source.principals, source.not_principals, self.principal, _PRINCIPALS),
                self._values(source.namespaces, source.not_namespaces, self.namespace, _PRINCIPALS),
                self._values(
                    source.service_accounts,
                    source.not_service_accounts,
                    self.service_account,
                    _PRINCIPALS,
                ),
                self._values(source.ip_blocks, source.not_ip_blocks, self.source_ip, _PRINCIPALS),
                self._values(
                    source.remote_ip_blocks,
                    source.not_remote_ip_blocks,
                    self.remote_ip,
                    _PRINCIPALS,
                ),
                self._values(
                    source.request_principals,
                    source.not_request_principals,
                    self.request_principal,
                    _PRINCIPALS,
                ),
            ],
            _and_ids,
        )

    def _values(
        self,
        values: Sequence[str],
        negated: Sequence[str],
        term: Callable[[str], Side | _Always],
        side: _Combinators[Side],
    ) -> Side | _Always:
        """``values`` ORed, ANDed with NOT(``negated`` ORed); principals or permissions."""
        terms: list[Side | _Always] = []
        if values:
            terms.append(_any_of([term(value) for value in values], side.or_))
        if negated:
            inner = _any_of([term(value) for value in negated], side.or_)
            terms.append(side.negate(inner))
        return _all_of(terms, side.and_)

    def _peer(self, matcher: string_pb2.StringMatcher) -> PrincipalTerm:
        if not self.context.identity:
            return self.unknown
        return rbac_pb2.Principal(
            filter_state=filter_state_pb2.FilterStateMatcher(
                key=names.PEER_PRINCIPAL, string_match=matcher
            )
        )

    def principal(self, value: str) -> PrincipalTerm:
        if value == "*":
            return self._peer(present())
        if value.endswith("*"):
            return self._peer(prefix("spiffe://" + value[:-1]))
        if value.startswith("*"):
            return self._peer(suffix(value[1:]))
        return self._peer(exact("spiffe://" + value))

    def namespace(self, value: str) -> PrincipalTerm:
        return self._peer(safe_regex(f"spiffe://[^/]+/ns/{_wildcard_segment(value)}/.*"))

    def service_account(self, value: str) -> PrincipalTerm:
        namespace, _, account = value.rpartition("/")
        namespace = namespace or self.policy.namespace
        return self._peer(
            safe_regex(f"spiffe://[^/]+/ns/{re.escape(namespace)}/sa/{re.escape(account)}")
        )

    def source_ip(self, value: str) -> PrincipalTerm:
        network = _network(value)
        if network is None:
            return self.unknown
        if self.context.mode is WaypointMode.SANDWICH:
            # An ordinary listener: the TCP peer is the caller (ztunnel keeps its address).
            return rbac_pb2.Principal(direct_remote_ip=_core_cidr(network))
        return rbac_pb2.Principal(
            filter_state=filter_state_pb2.FilterStateMatcher(
                key=names.ORIGINAL_DST_REMOTE_IP,
                address_match=address_matcher_pb2.AddressMatcher(ranges=[_xds_cidr(network)]),
            )
        )

    def remote_ip(self, value: str) -> PrincipalTerm:
        network = _network(value)
        if network is None:
            return self.unknown
        return rbac_pb2.Principal(remote_ip=_core_cidr(network))

    # Operations ------------------------------------------------------------------

    def operation(self, operation: Operation) -> PermissionTerm:
        return _all_of(
            [
                self._values(operation.hosts, operation.not_hosts, self.host, _PERMISSIONS),
                self._values(operation.ports, operation.not_ports, self.port, _PERMISSIONS),
                self._values(operation.methods, operation.not_methods, self.method, _PERMISSIONS),
                self._values(operation.paths, operation.not_paths, self.path, _PERMISSIONS),
            ],
            _and_rules,
        )

    def _header(self, name: str, matcher: string_pb2.StringMatcher) -> PermissionTerm:
        if not self.context.http:
            return self.unknown
        return rbac_pb2.Permission(
            header=route_components_pb2.HeaderMatcher(name=name, string_match=matcher)
        )

    def host(self, value: str) -> PermissionTerm:
        if value == "*":
            return self._header(":authority", present())
        # Case-insensitive, with or without a port in the authority.
        if value.startswith("*"):
            pattern = ".*" + re.escape(value[1:])
        elif value.endswith("*"):
            pattern = re.escape(value[:-1]) + ".*"
        else:
            pattern = re.escape(value)
        return self._header(":authority", safe_regex(f"(?i){pattern}(:[0-9]+)?"))

    def port(self, value: str) -> PermissionTerm:
        if not value.isdigit() or not 0 < int(value) < 65536:
            return self.unknown
        return rbac_pb2.Permission(destination_port=int(value))

    def method(self, value: str) -> PermissionTerm:
        return self._header(":method", exact(value))

    def path(self, value: str) -> PermissionTerm:
        if not self.context.http:
            return self.unknown
        if "{*}" in value or "{**}" in value:
            return rbac_pb2.Permission(
                uri_template=extension(
                    "uri-template",
                    # Envoy's template syntax is "*" / "**": "{*}" aborts Envoy.
                    uri_template_match_pb2.UriTemplateMatchConfig(
                        path_template=value.replace("{**}", "**").replace("{*}", "*")
                    ),
                )
            )
        return rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=_wild_string(value)))

    # Conditions ------------------------------------------------------------------

    def condition(self, condition: Condition) -> tuple[PrincipalTerm, PermissionTerm]:
        """A ``when`` entry: its term on the side it constrains, ALWAYS on the other."""
        key = condition.key
        principal_keys: dict[str, Callable[[str], PrincipalTerm]] = {
            "source.ip": self.source_ip,
            "remote.ip": self.remote_ip,
            "source.namespace": self.namespace,
            "source.principal": self.principal,
            "source.serviceAccount": self.service_account,
        }
        if key in principal_keys:
            return (
                self._values(
                    condition.values, condition.not_values, principal_keys[key], _PRINCIPALS
                ),
                ALWAYS,
            )
        permission_keys: dict[str, Callable[[str], PermissionTerm]] = {
            "destination.ip": self.destination_ip,
            "destination.port": self.port,
            "connection.sni": self.sni,
        }
        jwt_keys: dict[str, Callable[[str], PrincipalTerm]] = {
            "request.auth.principal": self.request_principal,
            "request.auth.audiences": lambda value: self._claim(("aud",), value),
            "request.auth.presenter": lambda value: self._claim(("azp",), value),
        }
        claim = re.fullmatch(r"request\.auth\.claims((?:\[[^\]]+\])+)", key)
        if key in jwt_keys or claim is not None:
            term: Callable[[str], PrincipalTerm] = (
                jwt_keys[key]
                if claim is None
                else partial(self._claim, tuple(re.findall(r"\[([^\]]+)\]", claim.group(1))))
            )
            return self._values(condition.values, condition.not_values, term, _PRINCIPALS), ALWAYS
        header = re.fullmatch(r"request\.headers\[(.+)\]", key)
        if header is not None:
            name = header.group(1).lower()
            return ALWAYS, self._values(
                condition.values,
                condition.not_values,
                lambda value: self._header(name, _wild_string(value)),
                _PERMISSIONS,
            )
        if key in permission_keys:
            return ALWAYS, self._values(
                condition.values, condition.not_values, permission_keys[key], _PERMISSIONS
            )
        # experimental.*, unknown keys.
        return ALWAYS, self.unknown

    # JWT (the payload jwt.py puts in the metadata) ----------------------------------

    def _payload(self, path: Sequence[str], value: value_matcher_pb2.ValueMatcher) -> PrincipalTerm:
        if not self.context.http:
            return self.unknown  # no token is ever read on a TCP chain
        # sourced_metadata: the plain ``metadata`` principal is deprecated (Envoy 1.40
        # aborts on it in validate mode).
        return rbac_pb2.Principal(
            sourced_metadata=rbac_pb2.SourcedMetadata(
                metadata_matcher=metadata_matcher_pb2.MetadataMatcher(
                    filter=jwt.FILTER_NAME,
                    path=[
                        metadata_matcher_pb2.MetadataMatcher.PathSegment(key=key)
                        for key in (jwt.PAYLOAD_KEY, *path)
                    ],
                    value=value,
                ),
                metadata_source=rbac_pb2.MetadataSource.DYNAMIC,
            )
        )

    def _claim(self, path: Sequence[str], value: str) -> PrincipalTerm:
        """A claim holding ``value``, whether the claim is a string or a list."""
        match = _wild_string(value)
        if value == "*":
            return self._payload(path, value_matcher_pb2.ValueMatcher(present_match=True))
        return _any_of(
            [
                self._payload(path, value_matcher_pb2.ValueMatcher(string_match=match)),
                self._payload(
                    path,
                    value_matcher_pb2.ValueMatcher(
                        list_match=value_matcher_pb2.ListMatcher(
                            one_of=value_matcher_pb2.ValueMatcher(string_match=match)
                        )
                    ),
                ),
            ],
            _or_ids,
        )

    def _string_claim(self, name: str, match: string_pb2.StringMatcher) -> PrincipalTerm:
        return self._payload((name,), value_matcher_pb2.ValueMatcher(string_match=match))

    def request_principal(self, value: str) -> PrincipalTerm:
        """``<iss>/<sub>`` (exact, ``prefix*``, ``*suffix`` or ``*``) as claims.

        Stock Envoy has no single "principal" value, so the string is matched through
        its two claims. Both may contain "/", so every place the pattern could be cut
        is tried (ORed): exactly what matching the joined string would match."""
        if value == "*":
            return self._payload(("iss",), value_matcher_pb2.ValueMatcher(present_match=True))
        cuts = [index for index, char in enumerate(value) if char == "/"]
        options: list[PrincipalTerm] = []
        if value.endswith("*"):
            stem = value[:-1]
            options.append(self._string_claim("iss", _starts(stem)))  # the cut lies past it
            for cut in (c for c in cuts if c < len(stem)):
                options.append(self._cut(exact(stem[:cut]), _starts(stem[cut + 1 :])))
        elif value.startswith("*"):
            stem = value[1:]
            options.append(self._string_claim("sub", _ends(stem)))
            for cut in (c - 1 for c in cuts if c > 0):
                options.append(self._cut(_ends(stem[:cut]), exact(stem[cut + 1 :])))
        else:
            for cut in cuts:
                options.append(self._cut(exact(value[:cut]), exact(value[cut + 1 :])))
        return _any_of(options, _or_ids)

    def _cut(
        self, issuer: string_pb2.StringMatcher, subject: string_pb2.StringMatcher
    ) -> PrincipalTerm:
        return _all_of(
            [self._string_claim("iss", issuer), self._string_claim("sub", subject)], _and_ids
        )

    def destination_ip(self, value: str) -> PermissionTerm:
        network = _network(value)
        if network is None:
            return self.unknown
        return rbac_pb2.Permission(destination_ip=_core_cidr(network))

    def sni(self, value: str) -> PermissionTerm:
        return rbac_pb2.Permission(requested_server_name=_wild_string(value))


# --- helpers ------------------------------------------------------------------------


def _all_of(
    terms: Iterable[Side | _Always], combine: Callable[[list[Side]], Side]
) -> Side | _Always:
    real: list[Side] = []
    for term in terms:
        if term is NEVER:
            return NEVER
        if term is not ALWAYS:
            real.append(term)
    if not real:
        return ALWAYS
    return real[0] if len(real) == 1 else combine(real)


def _any_of(
    terms: Iterable[Side | _Always], combine: Callable[[list[Side]], Side]
) -> Side | _Always:
    real: list[Side] = []
    for term in terms:
        if term is ALWAYS:
            return ALWAYS
        if term is not NEVER:
            real.append(term)
    if not real:
        return NEVER
    return real[0] if len(real) == 1 else combine(real)


def _or_ids(terms: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=terms))


def _and_ids(terms: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=terms))


def _or_rules(terms: list[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(or_rules=rbac_pb2.Permission.Set(rules=terms))


def _and_rules(terms: list[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(rules=terms))


@dataclass(frozen=True)
class _Combinators(Generic[Side]):
    """How the terms of one side combine: principals (ids) or permissions (rules)."""

    or_: Callable[[list[Side]], Side]
    and_: Callable[[list[Side]], Side]
    not_: Callable[[Side], Side]

    def negate(self, term: Side | _Always) -> Side | _Always:
        if term is ALWAYS:
            return NEVER
        if term is NEVER:
            return ALWAYS
        return self.not_(term)


def _not_id(principal: rbac_pb2.Principal) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(not_id=principal)


def _not_rule(permission: rbac_pb2.Permission) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(not_rule=permission)


_PRINCIPALS = _Combinators(_or_ids, _and_ids, _not_id)
_PERMISSIONS = _Combinators(_or_rules, _and_rules, _not_rule)


def _starts(text: str) -> string_pb2.StringMatcher:
    # Envoy refuses an empty prefix or suffix: "anything" is a regex then.
    return prefix(text) if text else safe_regex(".*")


def _ends(text: str) -> string_pb2.StringMatcher:
    return suffix(text) if text else safe_regex(".*")


def _wildcard_segment(value: str) -> str:
    """A namespace pattern (``*``, ``pre*``, ``*suf``) as a regex for one path segment."""
    if value == "*":
        return "[^/]+"
    if value.endswith("*"):
        return re.escape(value[:-1]) + "[^/]*"
    if value.startswith("*"):
        return "[^/]*" + re.escape(value[1:])
    return re.escape(value)


def _wild_string(value: str) -> string_pb2.StringMatcher:
    """Istio's value syntax: exact, ``prefix*``, ``*suffix`` or ``*`` (present)."""
    if value == "*":
        return present()
    if value.endswith("*"):
        return prefix(value[:-1])
    if value.startswith("*"):
        return suffix(value[1:])
    return exact(value)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _core_cidr(network: IPNetwork) -> address_pb2.CidrRange:
    return address_pb2.CidrRange(
        address_prefix=str(network.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
    )


def _xds_cidr(network: IPNetwork) -> cidr_pb2.CidrRange:
    return cidr_pb2.CidrRange(
        address_prefix=str(network.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
    )
