"""PeerAuthentication → synthetic DENY Authorizations, and which of them a workload uses.

ambient-index §6.4. ztunnel has no notion of mTLS modes; istiod expresses
STRICT as "deny connections without a peer identity":

* ``<root>/istio_converted_static_strict``: one shared DENY policy (not
  principals: presence), present whenever any PeerAuthentication exists, and
  referenced by every workload whose effective mode is STRICT on all ports.
* ``<ns>/converted_peer_authentication_<name>``: for a workload-selector PA
  with port-level modes, the per-port exceptions merged with the inherited
  mode, referenced *instead of* the static policy by the workloads it selects.

Precedence is mesh (oldest selector-less PA in the root namespace), then
namespace (oldest selector-less PA in the workload's namespace, UNSET
inherits), then workload (oldest PA whose selector matches, outside the root
namespace; root-namespace PAs with a selector are ignored).

Deliberate divergences from istiod (ambient-index §6.4 "quirks"), chosen
because each upstream behaviour silently weakens the mTLS the user asked for:

1. A DISABLE port under an inherited STRICT mode (workload mode UNSET) is
   treated like a PERMISSIVE port: istiod only looks for PERMISSIVE there and
   leaves the port strict.
2. With the workload mode PERMISSIVE/DISABLE, a STRICT port is enforced even
   when the root policy is STRICT and the namespace has none: istiod's
   operator precedence skips it, then references a converted policy that was
   never generated, so the port ends up plaintext-permitted.
3. A namespace PA whose mode is UNSET inherits the root mode in the
   conversion as it already does in the reference computation: istiod skips
   the port rule there, generates nothing, and the workload references a
   missing policy instead of the static STRICT one, losing STRICT everywhere.

The three fixes share one rule: the parent mode is the namespace mode unless
it is UNSET, else the root mode. For every input istiod handles without a
quirk, the output is byte-identical to istiod's (the upstream golden cases are
in the tests). One more, smaller alignment: a selector with empty
``matchLabels`` is treated as no selector everywhere (istiod does so in the
reference computation but not in the conversion), so a converted policy is
never produced without a workload that could reference it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.empty_pb2 import Empty

from xds.model.frozen import is_subset
from xds.model.security import MtlsMode, PeerAuthentication
from xds.proto.istio.security import authorization_pb2 as authz

STATIC_STRICT_POLICY_NAME = "istio_converted_static_strict"
"""Underscores: illegal in Kubernetes names, so no user policy can collide."""

CONVERTED_PREFIX = "converted_peer_authentication_"

_OLDEST = datetime.min.replace(tzinfo=UTC)
_NOT_STRICT = (MtlsMode.PERMISSIVE, MtlsMode.DISABLE)


def converted_name(policy: PeerAuthentication) -> str:
    return f"{CONVERTED_PREFIX}{policy.name}"


def static_strict_key(root_namespace: str) -> str:
    return f"{root_namespace}/{STATIC_STRICT_POLICY_NAME}"


def _no_identity() -> authz.Match:
    return authz.Match(not_principals=[authz.StringMatch(presence=Empty())])


def static_strict_policy(root_namespace: str) -> authz.Authorization:
    """The shared "deny plaintext" policy."""
    return authz.Authorization(
        name=STATIC_STRICT_POLICY_NAME,
        namespace=root_namespace,
        scope=authz.WORKLOAD_SELECTOR,
        action=authz.DENY,
        rules=[authz.Rule(clauses=[authz.Clause(matches=[_no_identity()])])],
    )


def _age(policy: PeerAuthentication) -> tuple[datetime, str]:
    return policy.meta.creation_timestamp or _OLDEST, policy.name


def oldest(policies: Iterable[PeerAuthentication]) -> PeerAuthentication | None:
    return min(policies, key=_age, default=None)


def is_namespace_wide(policy: PeerAuthentication) -> bool:
    """No selector, or one with empty ``matchLabels``."""
    return not policy.has_workload_selector


def parent_is_strict(
    namespace_policy: PeerAuthentication | None, root_policy: PeerAuthentication | None
) -> bool:
    """The mode a workload inherits: the namespace's unless UNSET, else the mesh's."""
    if namespace_policy is not None and namespace_policy.mode is not MtlsMode.UNSET:
        return namespace_policy.mode is MtlsMode.STRICT
    return root_policy is not None and root_policy.mode is MtlsMode.STRICT


def convert_peer_authentication(
    policy: PeerAuthentication,
    *,
    root_namespace: str,
    namespace_policy: PeerAuthentication | None,
    root_policy: PeerAuthentication | None,
) -> authz.Authorization | None:
    """The converted DENY policy for a workload PA with port-level modes, if one is needed.

    Shape (as istiod's golden files): one Rule per STRICT port that is
    stricter than the workload's effective mode, then one Rule whose clauses
    (AND-ed) say "no identity (if STRICT)" and "not on an exempted port" for
    each PERMISSIVE/DISABLE port, and "no identity" again when the parent is
    STRICT — so plaintext is denied except on the exempted ports.
    """
    if (
        policy.namespace == root_namespace
        or is_namespace_wide(policy)
        or not policy.port_level_mtls
    ):
        return None
    mode = policy.mode
    inherited_strict = parent_is_strict(namespace_policy, root_policy)
    effective_strict = mode is MtlsMode.STRICT or (mode is MtlsMode.UNSET and inherited_strict)
    clauses: list[authz.Clause] = []
    rules: list[authz.Rule] = []
    if mode is MtlsMode.STRICT:
        clauses.append(authz.Clause(matches=[_no_identity()]))
    exempted = False
    for port, port_mode in sorted(policy.port_level_mtls.items()):
        if port_mode is MtlsMode.STRICT:
            if effective_strict:
                continue  # the workload's own mode already covers this port
            strict_port = _no_identity()
            strict_port.destination_ports.append(port)
            rules.append(authz.Rule(clauses=[authz.Clause(matches=[strict_port])]))
        elif port_mode in _NOT_STRICT:
            if not effective_strict:
                continue  # nothing to exempt from
            exempted = True
            clauses.append(authz.Clause(matches=[authz.Match(not_destination_ports=[port])]))
    if mode is MtlsMode.STRICT and not exempted:
        return None  # plain STRICT: the static policy expresses it
    if not clauses and not rules:
        return None
    if inherited_strict and exempted:
        clauses.append(authz.Clause(matches=[_no_identity()]))
    if clauses:
        rules.append(authz.Rule(clauses=clauses))
    return authz.Authorization(
        name=converted_name(policy),
        namespace=policy.namespace,
        scope=authz.WORKLOAD_SELECTOR,
        action=authz.DENY,
        rules=rules,
    )


def effective_policies(
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
    by_namespace: Mapping[str, Sequence[PeerAuthentication]],
) -> tuple[PeerAuthentication | None, PeerAuthentication | None, PeerAuthentication | None]:
    """``(mesh, namespace, workload)`` PAs that apply to a workload (each may be ``None``)."""
    root_policies = by_namespace.get(root_namespace, ())
    mesh = oldest(p for p in root_policies if is_namespace_wide(p))
    if namespace == root_namespace:
        return mesh, None, None
    local = by_namespace.get(namespace, ())
    namespace_policy = oldest(p for p in local if is_namespace_wide(p))
    workload_policy = oldest(
        p
        for p in local
        if not is_namespace_wide(p) and p.selector is not None and is_subset(p.selector, labels)
    )
    return mesh, namespace_policy, workload_policy


def workload_policy_keys(
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
    by_namespace: Mapping[str, Sequence[PeerAuthentication]],
) -> list[str]:
    """The PA-derived names a workload lists in ``authorization_policies``, sorted."""
    mesh, namespace_policy, workload_policy = effective_policies(
        namespace, labels, root_namespace, by_namespace
    )
    strict = parent_is_strict(namespace_policy, mesh)
    converted: str | None = None
    if workload_policy is not None:
        mode = workload_policy.mode
        if mode is MtlsMode.STRICT:
            strict = True
        elif mode in _NOT_STRICT:
            strict = False
        port_modes = set(workload_policy.port_level_mtls.values())
        has_strict_port = MtlsMode.STRICT in port_modes
        has_lax_port = bool(port_modes & set(_NOT_STRICT))
        if port_modes:
            if strict and has_lax_port:
                # The converted policy carries the STRICT default plus the exceptions.
                converted, strict = converted_name(workload_policy), False
            elif not strict and has_strict_port:
                converted = converted_name(workload_policy)
    keys = []
    if strict:
        keys.append(static_strict_key(root_namespace))
    if converted is not None and workload_policy is not None:
        keys.append(f"{workload_policy.namespace}/{converted}")
    return sorted(keys)
