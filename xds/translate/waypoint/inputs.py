"""Everything one waypoint's configuration is computed from, as plain frozen data.

``collect.py`` reads the mesh into a ``WaypointInputs``; the builders turn it
into protos. Because the inputs are hashable values, the translator can tell
whether a waypoint is affected by a change simply by comparing them with the
previous ones: unchanged inputs mean unchanged resources, with no proto work.

The split between ``WaypointConfig`` (listeners and clusters) and endpoints
(``WaypointInputs.endpoints``) is what keeps a pod change an EDS-only push.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from xds.model.frozen import EMPTY_LABELS, FrozenMap, Labels, empty_map
from xds.model.gateway import GRPCRoute, HTTPRoute, ReferenceGrant, TCPRoute, TLSRoute
from xds.model.mesh import ExtAuthzProvider, FileAccessLogProvider
from xds.model.networking import DestinationRule, VirtualService
from xds.model.security import AuthorizationPolicy, RequestAuthentication


class PortProtocol(StrEnum):
    """The application protocol of a service port, as Istio classifies it."""

    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    GRPC_WEB = "GRPC-Web"
    TCP = "TCP"
    TLS = "TLS"
    UDP = "UDP"
    # Not declared: both chains exist and the HTTP inspector decides per connection.
    UNKNOWN = "UNKNOWN"

    @property
    def is_http(self) -> bool:
        return self in (
            PortProtocol.HTTP,
            PortProtocol.HTTP2,
            PortProtocol.GRPC,
            PortProtocol.GRPC_WEB,
        )

    @property
    def is_http2(self) -> bool:
        """Ports whose clients speak HTTP/2 (h2c): the HCM and cluster must too."""
        return self in (PortProtocol.HTTP2, PortProtocol.GRPC)

    @property
    def is_sniffed(self) -> bool:
        return self is PortProtocol.UNKNOWN


class WaypointMode(StrEnum):
    """How traffic reaches the waypoint and leaves it."""

    # istio-waypoint class: the waypoint terminates and originates HBONE itself.
    HBONE = "hbone"
    # A Gateway captured by ztunnel (istio.io/dataplane-mode=ambient): ztunnel
    # terminates HBONE and hands over plaintext on the service port (§10a).
    SANDWICH = "sandwich"
    # Inbound binding PROXY/<port>: ztunnel sends plaintext with a PROXY v2
    # header naming the original destination and the caller (§10b).
    PROXY = "proxy"


@dataclass(frozen=True, slots=True)
class GatewayListener:
    """A listener of a sandwiched Gateway that carries HTTP (name, port, hostname)."""

    name: str
    port: int
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class WaypointIdentity:
    """Which waypoint this is, and the mesh facts every resource depends on."""

    namespace: str
    name: str
    mode: WaypointMode = WaypointMode.HBONE
    gateway_class: str = "istio-waypoint"
    trust_domain: str = "cluster.local"
    domain_suffix: str = "cluster.local"
    root_namespace: str = "istio-system"
    # PROXY mode: the port ztunnel connects to.
    proxy_port: int = 0
    # SANDWICH mode: the Gateway's HTTP listeners.
    listeners: tuple[GatewayListener, ...] = ()


@dataclass(frozen=True, slots=True)
class ServicePortInfo:
    """One port of a service: number, name, protocol and where it lands on the pod."""

    port: int
    protocol: PortProtocol
    name: str = ""
    target_port: int | str = 0

    @property
    def cluster_kinds(self) -> tuple[bool, ...]:
        """Which ``inbound-vip`` clusters the port needs: ``True`` for http, ``False`` for tcp."""
        if self.protocol.is_sniffed:
            return (True, False)
        return (self.protocol.is_http,)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A service the waypoint knows: bound to it, or only a target of its routes.

    ``kind`` is ``Service`` or ``ServiceEntry``; ``vips`` are its cluster IPs
    (none for headless and DNS services, which then cannot be matched by VIP).
    """

    hostname: str
    name: str
    namespace: str
    kind: str = "Service"
    vips: tuple[str, ...] = ()
    ports: tuple[ServicePortInfo, ...] = ()
    bound: bool = True
    # ServiceEntry with DNS resolution: endpoints are hostnames that Envoy
    # resolves, so they are part of the cluster rather than served over EDS.
    dns: bool = False
    dns_endpoints: tuple[Endpoint, ...] = ()

    def port(self, number: int) -> ServicePortInfo | None:
        for port in self.ports:
            if port.port == number:
                return port
        return None


@dataclass(frozen=True, slots=True)
class Locality:
    region: str = ""
    zone: str = ""
    sub_zone: str = ""


class Health(StrEnum):
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DRAINING = "DRAINING"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One backend address of a service port.

    ``tunnel`` says the backend is reached through its ztunnel (HBONE, an
    internal address on ``connect_originate``); otherwise the waypoint sends
    plaintext straight to ``address:port``. ``address`` may be a hostname for
    DNS ServiceEntries. ``workload`` is istiod's telemetry string
    ``name;namespace;canonical-name;revision;cluster``.
    """

    address: str
    port: int
    tunnel: bool = True
    health: Health = Health.HEALTHY
    labels: Labels = EMPTY_LABELS
    locality: Locality = Locality()
    workload: str = ""
    weight: int = 1


@dataclass(frozen=True, slots=True)
class BoundWorkload:
    """A workload bound to the waypoint directly (pod-addressed traffic)."""

    name: str
    namespace: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaypointConfig:
    """What listeners and clusters are built from (everything but endpoint addresses).

    ``services`` are ordered: bound services first, in the order their chains
    are emitted, then route targets that are not bound. Routes and policies
    are the model objects themselves; only those relevant to this waypoint.
    """

    identity: WaypointIdentity
    services: tuple[ServiceInfo, ...] = ()
    workloads: tuple[BoundWorkload, ...] = ()
    http_routes: tuple[HTTPRoute, ...] = ()
    grpc_routes: tuple[GRPCRoute, ...] = ()
    tcp_routes: tuple[TCPRoute, ...] = ()
    tls_routes: tuple[TLSRoute, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: FrozenMap[str, DestinationRule] = field(default_factory=empty_map)
    policies: tuple[AuthorizationPolicy, ...] = ()
    # The grants in the namespaces that routes send to from elsewhere.
    reference_grants: tuple[ReferenceGrant, ...] = ()
    # The external authorizers the CUSTOM policies name (from the mesh config).
    extension_providers: tuple[ExtAuthzProvider, ...] = ()
    # RequestAuthentications whose targetRefs name the waypoint or a bound service.
    request_authentications: tuple[RequestAuthentication, ...] = ()
    # Where requests and connections are logged (Telemetry, else meshConfig.accessLogFile).
    access_logs: tuple[FileAccessLogProvider, ...] = ()
    # Telemetry tracing randomSamplingPercentage (None: Envoy's default, 100 %).
    trace_sampling: float | None = None

    def extension_provider(self, name: str) -> ExtAuthzProvider | None:
        for provider in self.extension_providers:
            if provider.name == name:
                return provider
        return None

    @property
    def gateway_routes(self) -> tuple[HTTPRoute | GRPCRoute | TCPRoute | TLSRoute, ...]:
        return (*self.http_routes, *self.grpc_routes, *self.tcp_routes, *self.tls_routes)

    @property
    def bound_services(self) -> tuple[ServiceInfo, ...]:
        return tuple(service for service in self.services if service.bound)

    def service(self, hostname: str) -> ServiceInfo | None:
        for service in self.services:
            if service.hostname == hostname:
                return service
        return None


@dataclass(frozen=True, slots=True)
class WaypointInputs:
    """A waypoint's full inputs: the config plus endpoints per (hostname, port)."""

    config: WaypointConfig
    endpoints: FrozenMap[tuple[str, int], tuple[Endpoint, ...]] = field(default_factory=empty_map)
