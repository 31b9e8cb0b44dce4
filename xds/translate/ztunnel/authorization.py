"""AuthorizationPolicy → ``istio.security.Authorization``, projected onto what ztunnel enforces.

ambient-index §6.1, istiod's ``convertAuthorizationPolicy``. ztunnel sees
only L4: identities, namespaces, service accounts, IPs and ports.

* Policies with ``targetRef(s)`` belong to waypoints and never reach ztunnel;
  neither do AUDIT/CUSTOM policies, nor dry-run policies (istiod's flag for
  sending those is off by default).
* Scope: WORKLOAD_SELECTOR when ``selector`` is present (even empty), else
  GLOBAL in the root namespace, else NAMESPACE.
* Each rule is one ``Rule`` (istiod calls it a Group) whose clauses are AND-ed:
  the ``to`` matches (one clause), the ``from`` matches (one clause), then one
  clause per ``when`` condition.
* HTTP-only fields: in an ALLOW policy the whole rule is dropped (it can never
  match, so an ALLOW policy whose rules are all dropped denies everything it
  applies to); in a DENY policy only the HTTP parts are left out, and a clause
  made only of HTTP parts becomes an empty match, which ztunnel never matches.
* Strings: ``*`` is presence, ``*x`` a suffix, ``x*`` a prefix, else exact.
  Principals go out verbatim (no ``spiffe://``). Invalid ports and IPs are
  dropped one by one, silently, as upstream does.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address

from google.protobuf.empty_pb2 import Empty

from xds.model.security import (
    AuthorizationAction,
    AuthorizationPolicy,
    Condition,
    Operation,
    Rule,
    Source,
)
from xds.proto.istio.security import authorization_pb2 as authz

L4_CONDITION_KEYS = frozenset(
    {"source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"}
)
_ACTIONS = {AuthorizationAction.ALLOW: authz.ALLOW, AuthorizationAction.DENY: authz.DENY}


def is_for_ztunnel(policy: AuthorizationPolicy) -> bool:
    """Whether istiod would send this policy to ztunnel at all."""
    return not policy.target_refs and policy.action in _ACTIONS and not policy.dry_run


# --- Value conversions ---------------------------------------------------------------


def string_match(value: str) -> authz.StringMatch:
    if value == "*":
        return authz.StringMatch(presence=Empty())
    if value.startswith("*"):
        return authz.StringMatch(suffix=value[1:])
    if value.endswith("*"):
        return authz.StringMatch(prefix=value[:-1])
    return authz.StringMatch(exact=value)


def string_matches(values: Iterable[str]) -> list[authz.StringMatch]:
    return [string_match(value) for value in values]


def ports(values: Iterable[str]) -> list[int]:
    """Decimal ports up to 65535; anything else (``"http"``, ``"-1"``) is skipped."""
    return [
        int(value)
        for value in values
        if value.isascii() and value.isdigit() and int(value) <= 65535
    ]


def _prefix_length(text: str, maximum: int) -> int | None:
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        return None
    length = int(text)
    return length if length <= maximum else None


def ip_blocks(values: Iterable[str]) -> list[authz.Address]:
    """IPs (length 32/128) and CIDRs (address kept as written, not masked)."""
    result = []
    for value in values:
        text, slash, length_text = value.partition("/")
        try:
            ip = ip_address(text)
        except ValueError:
            continue
        if slash:
            length = _prefix_length(length_text, ip.max_prefixlen)
            if length is None:
                continue
        else:
            length = ip.max_prefixlen
        result.append(authz.Address(address=ip.packed, length=length))
    return result


def service_accounts(
    values: Iterable[str], policy_namespace: str
) -> list[authz.ServiceAccountMatch]:
    """``ns/sa``, or a bare ``sa`` in the policy's own namespace."""
    result = []
    for value in values:
        namespace, slash, name = value.partition("/")
        if not slash:
            namespace, name = policy_namespace, value
        result.append(authz.ServiceAccountMatch(namespace=namespace, serviceAccount=name))
    return result


# --- Rules ---------------------------------------------------------------------------


def http_operation_fields(operation: Operation) -> list[str]:
    fields = (
        ("hosts", operation.hosts),
        ("notHosts", operation.not_hosts),
        ("methods", operation.methods),
        ("notMethods", operation.not_methods),
        ("paths", operation.paths),
        ("notPaths", operation.not_paths),
    )
    return [name for name, values in fields if values]


def http_source_fields(source: Source) -> list[str]:
    fields = (
        ("remoteIpBlocks", source.remote_ip_blocks),
        ("notRemoteIpBlocks", source.not_remote_ip_blocks),
        ("requestPrincipals", source.request_principals),
        ("notRequestPrincipals", source.not_request_principals),
    )
    return [name for name, values in fields if values]


def http_attributes(rule: Rule) -> set[str]:
    """The HTTP-only attributes a rule uses (what istiod reports in its status)."""
    found: set[str] = set()
    for operation in rule.operations:
        found.update(http_operation_fields(operation))
    for source in rule.sources:
        found.update(http_source_fields(source))
    found.update(c.key for c in rule.when if c.key not in L4_CONDITION_KEYS)
    return found


def _operation_match(operation: Operation) -> authz.Match:
    return authz.Match(
        destination_ports=ports(operation.ports), not_destination_ports=ports(operation.not_ports)
    )


def _source_match(source: Source, policy_namespace: str) -> authz.Match:
    return authz.Match(
        source_ips=ip_blocks(source.ip_blocks),
        not_source_ips=ip_blocks(source.not_ip_blocks),
        namespaces=string_matches(source.namespaces),
        not_namespaces=string_matches(source.not_namespaces),
        service_accounts=service_accounts(source.service_accounts, policy_namespace),
        not_service_accounts=service_accounts(source.not_service_accounts, policy_namespace),
        principals=string_matches(source.principals),
        not_principals=string_matches(source.not_principals),
    )


def _condition_match(condition: Condition) -> authz.Match:
    """An L4 condition as one match; any other key gives an empty (never-matching) match."""
    values, not_values = condition.values, condition.not_values
    match condition.key:
        case "source.namespace":
            return authz.Match(
                namespaces=string_matches(values), not_namespaces=string_matches(not_values)
            )
        case "source.principal":
            return authz.Match(
                principals=string_matches(values), not_principals=string_matches(not_values)
            )
        case "source.ip":
            return authz.Match(source_ips=ip_blocks(values), not_source_ips=ip_blocks(not_values))
        case "destination.ip":
            return authz.Match(
                destination_ips=ip_blocks(values), not_destination_ips=ip_blocks(not_values)
            )
        case "destination.port":
            return authz.Match(
                destination_ports=ports(values), not_destination_ports=ports(not_values)
            )
        case _:
            return authz.Match()


def convert_rule(rule: Rule, action: int, policy_namespace: str) -> authz.Rule | None:
    """One policy rule; ``None`` when an ALLOW rule uses HTTP attributes."""
    if action == authz.ALLOW and http_attributes(rule):
        return None
    converted = authz.Rule()
    if rule.operations:
        converted.clauses.add(matches=[_operation_match(op) for op in rule.operations])
    if rule.sources:
        converted.clauses.add(
            matches=[_source_match(src, policy_namespace) for src in rule.sources]
        )
    for condition in rule.when:
        converted.clauses.add(matches=[_condition_match(condition)])
    return converted


def convert_authorization_policy(
    policy: AuthorizationPolicy, root_namespace: str
) -> authz.Authorization | None:
    """The Authorization ztunnel gets for ``policy``, or ``None`` when it gets nothing."""
    if not is_for_ztunnel(policy):
        return None
    if policy.selector is not None:
        scope = authz.WORKLOAD_SELECTOR
    elif policy.namespace == root_namespace:
        scope = authz.GLOBAL
    else:
        scope = authz.NAMESPACE
    action = _ACTIONS[policy.action]
    message = authz.Authorization(
        name=policy.name, namespace=policy.namespace, scope=scope, action=action
    )
    for rule in policy.rules:
        converted = convert_rule(rule, action, policy.namespace)
        if converted is not None:
            message.rules.append(converted)
    return message
