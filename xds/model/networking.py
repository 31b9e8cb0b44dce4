"""Istio networking kinds: ServiceEntry, WorkloadEntry, VirtualService, DestinationRule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network

from xds.model.frozen import EMPTY_LABELS, FrozenMap, Labels, empty_map
from xds.model.meta import KubeObject

NETWORKING_GROUP = "networking.istio.io"

IPNetwork = IPv4Network | IPv6Network


class Location(StrEnum):
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class Resolution(StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


@dataclass(frozen=True, slots=True)
class ServiceEntryPort:
    """``spec.ports[]``; ``target_port`` is 0 when unset; ``protocol`` as written (e.g. HTTP)."""

    number: int
    name: str = ""
    protocol: str = ""
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class WorkloadEndpoint:
    """The WorkloadEntry spec shape, used for ServiceEntry inline ``endpoints[]``.

    ``address`` is an IP, a hostname, or empty; ``ports`` maps port names to numbers.
    """

    address: str = ""
    ports: FrozenMap[str, int] = empty_map()  # noqa: RUF009 - immutable
    labels: Labels = EMPTY_LABELS
    network: str = ""
    locality: str = ""
    weight: int = 0
    service_account: str = ""


@dataclass(frozen=True, slots=True)
class AllocatedAddress:
    """``status.addresses[]`` of a ServiceEntry: an auto-allocated IP for one host."""

    host: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntry(KubeObject):
    """A ServiceEntry. ``addresses`` are parsed as networks (a bare IP is a /32 or /128),
    masked to canonical form; ``workload_selector`` is ``None`` when absent.
    """

    kind = "ServiceEntry"
    api_group = NETWORKING_GROUP

    hosts: tuple[str, ...]
    addresses: tuple[IPNetwork, ...] = ()
    ports: tuple[ServiceEntryPort, ...] = ()
    location: Location = Location.MESH_EXTERNAL
    resolution: Resolution = Resolution.NONE
    endpoints: tuple[WorkloadEndpoint, ...] = ()
    workload_selector: Labels | None = None
    subject_alt_names: tuple[str, ...] = ()
    export_to: tuple[str, ...] = ()
    status_addresses: tuple[AllocatedAddress, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEntry(KubeObject):
    """A WorkloadEntry. ``spec_labels`` are ``spec.labels``; see ``workload_labels``."""

    kind = "WorkloadEntry"
    api_group = NETWORKING_GROUP

    address: str = ""
    spec_labels: Labels = EMPTY_LABELS
    ports: FrozenMap[str, int] = empty_map()  # noqa: RUF009 - immutable
    network: str = ""
    locality: str = ""
    weight: int = 0
    service_account: str = ""

    @property
    def workload_labels(self) -> Labels:
        """``spec.labels`` merged with ``metadata.labels``; metadata wins on conflict."""
        if not self.spec_labels:
            return self.labels
        return FrozenMap({**self.spec_labels, **self.labels})


# --- VirtualService -----------------------------------------------------------


class StringMatchType(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class StringMatch:
    type: StringMatchType
    value: str


@dataclass(frozen=True, slots=True)
class VirtualServiceMatch:
    """``http[].match[]``."""

    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: FrozenMap[str, StringMatch] = empty_map()  # noqa: RUF009 - immutable
    without_headers: FrozenMap[str, StringMatch] = empty_map()  # noqa: RUF009 - immutable
    query_params: FrozenMap[str, StringMatch] = empty_map()  # noqa: RUF009 - immutable
    port: int | None = None
    source_labels: Labels = EMPTY_LABELS
    gateways: tuple[str, ...] = ()
    ignore_uri_case: bool = False


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    subset: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderOperations:
    set: FrozenMap[str, str] = empty_map()  # noqa: RUF009 - immutable
    add: FrozenMap[str, str] = empty_map()  # noqa: RUF009 - immutable
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headers:
    request: HeaderOperations = HeaderOperations()
    response: HeaderOperations = HeaderOperations()


@dataclass(frozen=True, slots=True)
class RouteDestination:
    """``http[].route[]``; ``weight`` is 0 when unset (a single destination gets it all)."""

    destination: Destination
    weight: int = 0
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    uri: str | None = None
    authority: str | None = None
    port: int | None = None
    scheme: str | None = None
    redirect_code: int = 301


@dataclass(frozen=True, slots=True)
class RegexRewrite:
    match: str
    rewrite: str


@dataclass(frozen=True, slots=True)
class Rewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True)
class Retries:
    """``http[].retries``; ``attempts`` 0 means "no retry policy at all"."""

    attempts: int = 0
    per_try_timeout: timedelta | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None


@dataclass(frozen=True, slots=True)
class FaultDelay:
    fixed_delay: timedelta
    percentage: float | None = None  # 0..100; None means 100


@dataclass(frozen=True, slots=True)
class FaultAbort:
    """Exactly one of ``http_status`` / ``grpc_status`` is set."""

    http_status: int | None = None
    grpc_status: str | None = None
    percentage: float | None = None  # 0..100; None means 100


@dataclass(frozen=True, slots=True)
class Fault:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


class UnmatchedPreflights(StrEnum):
    """Preflights whose origin is not allowed: FORWARD (and UNSPECIFIED) pass them on to
    the backend, IGNORE answers them without CORS headers."""

    UNSPECIFIED = "UNSPECIFIED"
    FORWARD = "FORWARD"
    IGNORE = "IGNORE"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """``http[].corsPolicy``; the deprecated ``allowOrigin`` strings are exact origins here."""

    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: timedelta | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: UnmatchedPreflights = UnmatchedPreflights.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class VirtualServiceRoute:
    """One ``http[]`` entry of a VirtualService."""

    name: str = ""
    match: tuple[VirtualServiceMatch, ...] = ()
    route: tuple[RouteDestination, ...] = ()
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    timeout: timedelta | None = None
    retries: Retries | None = None
    fault: Fault | None = None
    mirror: Destination | None = None
    mirror_percentage: float | None = None
    headers: Headers | None = None
    cors: CorsPolicy | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualService(KubeObject):
    kind = "VirtualService"
    api_group = NETWORKING_GROUP

    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[VirtualServiceRoute, ...] = ()


# --- DestinationRule ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsistentHash:
    """``loadBalancer.consistentHash``: exactly one hash key is set."""

    http_header_name: str | None = None
    http_cookie_name: str | None = None
    http_cookie_path: str | None = None
    http_cookie_ttl: timedelta | None = None
    use_source_ip: bool = False
    http_query_parameter_name: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPool:
    """``connectionPool``: 0 or ``None`` means "not set" (Envoy's or istiod's default)."""

    max_connections: int = 0
    connect_timeout: timedelta | None = None
    max_connection_duration: timedelta | None = None
    tcp_idle_timeout: timedelta | None = None
    http1_max_pending_requests: int = 0
    http2_max_requests: int = 0
    max_requests_per_connection: int = 0
    max_retries: int = 0
    http_idle_timeout: timedelta | None = None
    max_concurrent_streams: int = 0


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """``outlierDetection``; ``None`` counts are unset (Envoy's defaults apply)."""

    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    interval: timedelta | None = None
    base_ejection_time: timedelta | None = None
    max_ejection_percent: int = 0
    min_health_percent: int = 0
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = None


@dataclass(frozen=True, slots=True)
class ClientTls:
    """``tls`` with mode SIMPLE or MUTUAL: TLS the proxy originates. Files are paths in
    the proxy's own file system; ``credential_name`` (which wins over them, as in istiod)
    names a Secret of the proxy's namespace, served to it over SDS."""

    mutual: bool = False
    sni: str | None = None
    ca_certificates: str | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    credential_name: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """The parts of a ``trafficPolicy`` a waypoint applies. ``port_level``: the policies
    of ``portLevelSettings`` by port number (they replace these components whole)."""

    load_balancer_simple: str | None = None
    consistent_hash: ConsistentHash | None = None
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTls | None = None
    port_level: tuple[tuple[int, TrafficPolicy], ...] = ()

    @property
    def has_load_balancer(self) -> bool:
        return self.load_balancer_simple is not None or self.consistent_hash is not None


@dataclass(frozen=True, slots=True)
class Subset:
    name: str
    labels: Labels = EMPTY_LABELS
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRule(KubeObject):
    kind = "DestinationRule"
    api_group = NETWORKING_GROUP

    host: str
    subsets: tuple[Subset, ...] = ()
    traffic_policy: TrafficPolicy | None = None

    def subset(self, name: str) -> Subset | None:
        for subset in self.subsets:
            if subset.name == name:
                return subset
        return None
