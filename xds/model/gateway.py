"""Gateway API kinds: GatewayClass, Gateway, HTTPRoute, GRPCRoute, TCPRoute, TLSRoute.

Defaults the Gateway API CRDs apply on admission are applied here as well
(a rule without matches matches ``PathPrefix /``, a backend weight is 1, a
parentRef is a Gateway), and references without a namespace are resolved to
the route's own namespace, so translators never need to know the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from ipaddress import ip_address

from xds.model.meta import IPAddress, KubeObject, LabelSelector

GATEWAY_GROUP = "gateway.networking.k8s.io"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayClass(KubeObject):
    """A GatewayClass; its labels/annotations give waypoint defaults (waypoint-for, binding)."""

    kind = "GatewayClass"
    api_group = GATEWAY_GROUP
    namespaced = False

    controller_name: str


class FromNamespaces(StrEnum):
    ALL = "All"
    SAME = "Same"
    SELECTOR = "Selector"


@dataclass(frozen=True, slots=True)
class AllowedRoutes:
    """``listeners[].allowedRoutes.namespaces``; ``selector`` is set only for ``Selector``."""

    namespaces_from: FromNamespaces = FromNamespaces.SAME
    selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    """A Gateway listener; ``protocol`` is free-form (``HBONE``, ``HTTP``, ``istio.io/PROXY``)."""

    name: str
    port: int
    protocol: str
    hostname: str | None = None
    allowed_routes: AllowedRoutes = AllowedRoutes()


IP_ADDRESS_TYPE = "IPAddress"
HOSTNAME_TYPE = "Hostname"


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    """A ``spec.addresses[]`` or ``status.addresses[]`` entry. IPAddress values are validated."""

    value: str
    type: str = IP_ADDRESS_TYPE

    @property
    def ip(self) -> IPAddress | None:
        """The parsed IP for an ``IPAddress`` entry, else ``None``."""
        return ip_address(self.value) if self.type == IP_ADDRESS_TYPE else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway(KubeObject):
    """A Gateway. It is a usable waypoint once ``status_addresses`` is non-empty."""

    kind = "Gateway"
    api_group = GATEWAY_GROUP

    gateway_class_name: str
    listeners: tuple[Listener, ...] = ()
    addresses: tuple[GatewayAddress, ...] = ()
    status_addresses: tuple[GatewayAddress, ...] = ()


# --- Routes -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentRef:
    """``parentRefs[]``; ``namespace`` is resolved (defaults to the route's namespace)."""

    name: str
    namespace: str
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    section_name: str | None = None
    port: int | None = None

    @property
    def is_service(self) -> bool:
        """GAMMA: the route attaches to a Service (core group)."""
        return self.group == "" and self.kind == "Service"


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PATH_PREFIX = "PathPrefix"
    REGULAR_EXPRESSION = "RegularExpression"


class HeaderMatchType(StrEnum):
    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType = PathMatchType.PATH_PREFIX
    value: str = "/"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A header or query parameter match."""

    name: str
    value: str
    type: HeaderMatchType = HeaderMatchType.EXACT


@dataclass(frozen=True, slots=True)
class HTTPRouteMatch:
    path: PathMatch | None = PathMatch()
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[HeaderMatch, ...] = ()
    method: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    set: tuple[HTTPHeader, ...] = ()
    add: tuple[HTTPHeader, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestHeaderModifier(HeaderModifier):
    pass


@dataclass(frozen=True, slots=True)
class ResponseHeaderModifier(HeaderModifier):
    pass


class PathModifierType(StrEnum):
    REPLACE_FULL_PATH = "ReplaceFullPath"
    REPLACE_PREFIX_MATCH = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: PathModifierType
    value: str


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class RequestMirror:
    """Mirror to ``backend_ref``: ``percent``, or ``fraction`` as (numerator, denominator);
    100% when neither is set."""

    backend_ref: BackendRef
    percent: int | None = None
    fraction: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class CORSFilter:
    """``cors``: origins are exact, ``*`` (any origin) or patterns with ``*`` wildcards;
    ``max_age`` in seconds (the CRD's default is 5)."""

    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5


@dataclass(frozen=True, slots=True)
class UnsupportedFilter:
    """A filter type the control plane does not implement (ExtensionRef, ...).

    Kept rather than rejected: the route is valid Gateway API, and translation
    decides what to do (upstream fails the rule with "unsupported filter type").
    """

    type: str


HTTPFilter = (
    RequestHeaderModifier
    | ResponseHeaderModifier
    | RequestRedirect
    | URLRewrite
    | RequestMirror
    | CORSFilter
    | UnsupportedFilter
)


@dataclass(frozen=True, slots=True)
class BackendRef:
    """``backendRefs[]``; ``namespace`` is resolved to the route's namespace when omitted."""

    name: str
    namespace: str
    group: str = ""
    kind: str = "Service"
    port: int | None = None
    weight: int = 1
    filters: tuple[HTTPFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPRouteTimeouts:
    request: timedelta | None = None
    backend_request: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteRetry:
    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteRule:
    matches: tuple[HTTPRouteMatch, ...] = (HTTPRouteMatch(),)
    filters: tuple[HTTPFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPRoute(KubeObject):
    kind = "HTTPRoute"
    api_group = GATEWAY_GROUP

    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[HTTPRouteRule, ...] = ()


class GRPCMethodMatchType(StrEnum):
    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


@dataclass(frozen=True, slots=True)
class GRPCMethodMatch:
    service: str | None = None
    method: str | None = None
    type: GRPCMethodMatchType = GRPCMethodMatchType.EXACT


@dataclass(frozen=True, slots=True)
class GRPCRouteMatch:
    method: GRPCMethodMatch | None = None
    headers: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class GRPCRouteRule:
    matches: tuple[GRPCRouteMatch, ...] = ()
    filters: tuple[HTTPFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GRPCRoute(KubeObject):
    kind = "GRPCRoute"
    api_group = GATEWAY_GROUP

    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[GRPCRouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class L4RouteRule:
    """A TCPRoute or TLSRoute rule: only backends (weights split connections)."""

    backend_refs: tuple[BackendRef, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TCPRoute(KubeObject):
    kind = "TCPRoute"
    api_group = GATEWAY_GROUP

    parent_refs: tuple[ParentRef, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRoute(KubeObject):
    """A TLSRoute; ``hostnames`` are matched against the SNI."""

    kind = "TLSRoute"
    api_group = GATEWAY_GROUP

    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferenceGrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class ReferenceGrantTo:
    """``name`` ``None``: every object of the kind in the grant's namespace."""

    group: str
    kind: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceGrant(KubeObject):
    """Lets objects of the ``from`` kinds and namespaces refer to the ``to`` objects in
    the grant's own namespace (a route's backendRef to a Service elsewhere)."""

    kind = "ReferenceGrant"
    api_group = GATEWAY_GROUP

    from_: tuple[ReferenceGrantFrom, ...] = ()
    to: tuple[ReferenceGrantTo, ...] = ()

    def permits(
        self, source: ReferenceGrantFrom, group: str, kind: str, namespace: str, name: str
    ) -> bool:
        return (
            namespace == self.namespace
            and source in self.from_
            and any(
                target.group == group and target.kind == kind and target.name in (None, name)
                for target in self.to
            )
        )


def reference_permitted(
    grants: Iterable[ReferenceGrant],
    source: ReferenceGrantFrom,
    group: str,
    kind: str,
    namespace: str,
    name: str,
) -> bool:
    """A reference from an object (``source``: its group, kind and namespace) to the
    object ``group``/``kind`` ``namespace``/``name``: always within one namespace,
    across namespaces only when a ReferenceGrant there says so."""
    return namespace == source.namespace or any(
        grant.permits(source, group, kind, namespace, name) for grant in grants
    )
