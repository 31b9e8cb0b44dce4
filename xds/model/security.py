"""Istio security kinds: AuthorizationPolicy and PeerAuthentication.

Rule fields are kept verbatim as strings (ports, IP blocks, principals):
upstream drops individual invalid entries during translation instead of
rejecting the policy, and translators must be able to reproduce that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from xds.model import wellknown
from xds.model.frozen import FrozenMap, Labels, empty_map
from xds.model.meta import KubeObject

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})

SECURITY_GROUP = "security.istio.io"


class AuthorizationAction(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True, slots=True)
class PolicyTargetRef:
    """``targetRef`` / ``targetRefs[]``; ``namespace`` is ``None`` when omitted (the policy's)."""

    kind: str
    name: str
    group: str = ""
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """``rules[].from[].source``."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    not_service_accounts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """``rules[].to[].operation``; ports are strings as written (``"http"`` is kept)."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """``rules[].when[]``."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``rules[]`` entry: ``sources`` is ``from``, ``operations`` is ``to``."""

    sources: tuple[Source, ...] = ()
    operations: tuple[Operation, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationPolicy(KubeObject):
    """An AuthorizationPolicy.

    ``selector`` is ``None`` when absent and an empty map for ``selector: {}``;
    the two differ (an empty selector is workload scope, attached to nothing).
    ``target_refs`` merges ``targetRef`` and ``targetRefs``, in that order.
    """

    kind = "AuthorizationPolicy"
    api_group = SECURITY_GROUP

    selector: Labels | None = None
    target_refs: tuple[PolicyTargetRef, ...] = ()
    action: AuthorizationAction = AuthorizationAction.ALLOW
    provider: str | None = None
    rules: tuple[Rule, ...] = ()

    @property
    def dry_run(self) -> bool:
        """The ``istio.io/dry-run`` annotation, read as istiod reads it (Go's
        ``ParseBool``: ``1``, ``t``, ``true``, ``True``...; anything else is false)."""
        return self.annotations.get(wellknown.DRY_RUN, "") in _GO_TRUE


class MtlsMode(StrEnum):
    UNSET = "UNSET"
    DISABLE = "DISABLE"
    PERMISSIVE = "PERMISSIVE"
    STRICT = "STRICT"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAuthentication(KubeObject):
    """A PeerAuthentication; ``mode`` is ``UNSET`` when ``mtls`` is absent."""

    kind = "PeerAuthentication"
    api_group = SECURITY_GROUP

    selector: Labels | None = None
    mode: MtlsMode = MtlsMode.UNSET
    port_level_mtls: FrozenMap[int, MtlsMode] = empty_map()  # noqa: RUF009 - immutable

    @property
    def has_workload_selector(self) -> bool:
        """Upstream treats a nil selector and empty ``matchLabels`` alike here."""
        return bool(self.selector)


@dataclass(frozen=True, slots=True)
class JwtHeader:
    """Where a token may be: a header, and the prefix before it (``Bearer ``)."""

    name: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class JwtRule:
    """One issuer of a RequestAuthentication: how its tokens are found and checked."""

    issuer: str
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: tuple[JwtHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str | None = None
    forward_original_token: bool = False
    output_claim_to_headers: tuple[tuple[str, str], ...] = ()
    """(header, claim) pairs."""
    timeout: timedelta | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAuthentication(KubeObject):
    """A RequestAuthentication. As for AuthorizationPolicy, ``selector`` is ``None`` when
    absent; ``target_refs`` merges ``targetRef`` and ``targetRefs``."""

    kind = "RequestAuthentication"
    api_group = SECURITY_GROUP

    selector: Labels | None = None
    target_refs: tuple[PolicyTargetRef, ...] = ()
    jwt_rules: tuple[JwtRule, ...] = ()
