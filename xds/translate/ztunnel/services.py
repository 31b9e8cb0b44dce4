"""Kubernetes Services and ServiceEntries → ``istio.workload.Service`` (ambient-index §3).

Each source object becomes zero or more ``ServiceInfo``: the wire message
plus what workloads need to list themselves as its endpoints (selector, port
names). ``select_services`` then resolves hostname collisions, as istiod's
``selectWorkloadServices`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime

from xds.model import wellknown
from xds.model.core import InternalTrafficPolicy, IPFamily, Namespace, Service, ServiceType
from xds.model.frozen import EMPTY_LABELS, Labels
from xds.model.meta import ObjectKey
from xds.model.networking import Resolution, ServiceEntry
from xds.proto.istio.workload import workload_pb2 as wl
from xds.translate.binding import (
    Waypoint,
    WaypointChoice,
    canary_waypoints,
    service_binding,
)
from xds.translate.ztunnel.addresses import (
    gateway_address,
    network_address,
    network_address_from_cidr,
    parse_ip,
)
from xds.translate.ztunnel.context import Context
from xds.translate.ztunnel.protocols import kube_app_protocol, protocol_from_name

_OLDEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PortName:
    """A Service port's name and, for a Kubernetes Service, its named targetPort."""

    port_name: str
    target_port_name: str = ""


@dataclass(slots=True, eq=False)
class ServiceInfo:
    """One ``istio.workload.Service`` with the bookkeeping endpoints need.

    ``selector`` empty selects nothing. ``message.canonical`` is as built from
    the source alone (true for Kubernetes Services); ``select_services``
    decides the final value for ServiceEntries.
    """

    source: ObjectKey
    message: wl.Service
    ports: tuple[tuple[int, int], ...]
    """``(service_port, target_port)`` in order; target 0 means "named"."""
    port_names: Mapping[int, PortName]
    selector: Labels
    created: tuple[datetime, str]
    waypoint: Waypoint | None
    selector_items: frozenset[tuple[str, str]] = frozenset()
    """``selector`` as a set, for fast subset tests (see ``policies.label_items``)."""

    def __post_init__(self) -> None:
        self.selector_items = frozenset(self.selector.items())

    def selects(self, items: AbstractSet[tuple[str, str]]) -> bool:
        """Whether the (non-empty) selector matches labels given as ``label_items``."""
        return bool(self.selector_items) and self.selector_items <= items

    @property
    def namespace(self) -> str:
        return self.source.namespace

    @property
    def hostname(self) -> str:
        return self.message.hostname

    @property
    def is_kube(self) -> bool:
        return self.source.kind == Service.kind

    @property
    def key(self) -> str:
        """``"<namespace>/<hostname>"``: the resource name and the Workload.services key."""
        return f"{self.source.namespace}/{self.message.hostname}"

    def endpoint_view(self) -> tuple[object, ...]:
        """What a workload's ``services`` entry depends on; equal views need no workload
        rebuild when the Service changes in other ways (waypoint, load balancing...)."""
        return (
            self.source,
            self.message.hostname,
            self.selector,
            self.ports,
            tuple(sorted(self.port_names.items())),
        )


def _created(obj: Service | ServiceEntry) -> tuple[datetime, str]:
    # Objects without a creation time (hand-written manifests) count as oldest;
    # the name breaks ties so that the choice never depends on arrival order.
    return obj.meta.creation_timestamp or _OLDEST, obj.name


# --- Load balancing --------------------------------------------------------------

_SAME_ZONE = "samezone"
_SAME_NODE = "samenode"
_ANY = "any"
_DISTRIBUTIONS = {
    "preferclose": _SAME_ZONE,
    "prefersamezone": _SAME_ZONE,
    "prefersamenode": _SAME_NODE,
}
_SPEC_DISTRIBUTIONS = {
    "PreferClose": _SAME_ZONE,
    "PreferSameZone": _SAME_ZONE,
    "PreferSameNode": _SAME_NODE,
}


def traffic_distribution(
    spec_value: str | None, annotations: Mapping[str, str], namespace_annotations: Mapping[str, str]
) -> str:
    """The first source that says something: spec, Service annotation, namespace annotation.

    An unknown spec value falls through; an unknown annotation value means
    "any" and stops the search (istiod's ``GetTrafficDistribution``).
    """
    if spec_value is not None and spec_value in _SPEC_DISTRIBUTIONS:
        return _SPEC_DISTRIBUTIONS[spec_value]
    for source in (annotations, namespace_annotations):
        value = source.get(wellknown.TRAFFIC_DISTRIBUTION, "").lower()
        if value:
            return _DISTRIBUTIONS.get(value, _ANY)
    return _ANY


def _distribution_load_balancing(distribution: str) -> wl.LoadBalancing | None:
    scopes = wl.LoadBalancing
    if distribution == _SAME_ZONE:
        return wl.LoadBalancing(
            routing_preference=[scopes.NETWORK, scopes.REGION, scopes.ZONE], mode=scopes.FAILOVER
        )
    if distribution == _SAME_NODE:
        return wl.LoadBalancing(
            routing_preference=[
                scopes.NETWORK,
                scopes.REGION,
                scopes.ZONE,
                scopes.SUBZONE,
                scopes.NODE,
            ],
            mode=scopes.FAILOVER,
        )
    return None


def kube_load_balancing(
    service: Service, namespace_annotations: Mapping[str, str]
) -> wl.LoadBalancing | None:
    if service.internal_traffic_policy is InternalTrafficPolicy.LOCAL:
        balancing: wl.LoadBalancing | None = wl.LoadBalancing(
            routing_preference=[wl.LoadBalancing.NODE], mode=wl.LoadBalancing.STRICT
        )
    else:
        balancing = _distribution_load_balancing(
            traffic_distribution(
                service.traffic_distribution, service.annotations, namespace_annotations
            )
        )
    if service.publish_not_ready_addresses:
        if balancing is None:
            balancing = wl.LoadBalancing()
        balancing.health_policy = wl.LoadBalancing.ALLOW_ALL
    return balancing


def _ip_families(families: tuple[IPFamily, ...]) -> wl.IPFamilies:
    if len(families) == 2:
        return wl.DUAL
    if len(families) == 1:
        return wl.IPV4_ONLY if families[0] is IPFamily.IPV4 else wl.IPV6_ONLY
    return wl.AUTOMATIC


# --- Waypoint fields ---------------------------------------------------------------

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _ingress_use_waypoint(labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> bool:
    """The ``istio.io/ingress-use-waypoint`` label (Service, else namespace), as Go's
    ``ParseBool`` reads it; anything unparseable is false."""
    value = labels.get(wellknown.INGRESS_USE_WAYPOINT)
    if value is None:
        value = namespace_labels.get(wellknown.INGRESS_USE_WAYPOINT)
    return value in _TRUE


def _set_waypoint(
    message: wl.Service,
    obj: Service | ServiceEntry,
    namespace: Namespace | None,
    binding: WaypointChoice,
    waypoints: Mapping[str, Waypoint],
) -> None:
    waypoint = binding.waypoint
    if waypoint is None:
        return
    if waypoint.address is not None:
        message.waypoint.CopyFrom(gateway_address(waypoint.address))
    namespace_labels = namespace.labels if namespace is not None else EMPTY_LABELS
    message.ingress_use_waypoint = _ingress_use_waypoint(obj.labels, namespace_labels)
    weighted, _ = canary_waypoints(obj, namespace, binding, waypoints)
    for entry in weighted:
        destination = entry.waypoint.address
        if destination is None:
            continue
        message.weighted_waypoints.add(
            destination=gateway_address(destination), weight=entry.weight
        )


# --- Builders ------------------------------------------------------------------------


def kube_service_info(
    service: Service,
    namespace: Namespace | None,
    waypoints: Mapping[str, Waypoint],
    context: Context,
) -> ServiceInfo | None:
    """A Kubernetes Service; ``None`` for ExternalName (ztunnel leaves that to DNS)."""
    if service.type is ServiceType.EXTERNAL_NAME:
        return None
    namespace_annotations = namespace.annotations if namespace is not None else EMPTY_LABELS
    message = wl.Service(
        name=service.name,
        namespace=service.namespace,
        hostname=context.service_hostname(service.name, service.namespace),
        addresses=[network_address(context.network, ip) for ip in service.cluster_ips],
        ip_families=_ip_families(service.ip_families),
        canonical=True,
    )
    ports = []
    for port in service.ports:
        target = port.target_port if isinstance(port.target_port, int) else 0
        message.ports.add(
            service_port=port.port, target_port=target, app_protocol=kube_app_protocol(port)
        )
        ports.append((port.port, target))
    balancing = kube_load_balancing(service, namespace_annotations)
    if balancing is not None:
        message.load_balancing.CopyFrom(balancing)
    binding = service_binding(service, namespace, waypoints)
    _set_waypoint(message, service, namespace, binding, waypoints)
    return ServiceInfo(
        source=service.key,
        message=message,
        ports=tuple(ports),
        port_names={
            port.port: PortName(port.name, port.target_port_name or "") for port in service.ports
        },
        selector=service.selector,
        created=_created(service),
        waypoint=binding.waypoint,
    )


def _auto_allocated(entry: ServiceEntry, host: str, network: str) -> list[wl.NetworkAddress]:
    """Addresses from ``status.addresses`` for ``host``, where istiod would use them."""
    if entry.resolution is Resolution.NONE or entry.addresses:
        return []
    if entry.labels.get(wellknown.ENABLE_AUTOALLOCATE_IP, "").lower() == "false":
        return []
    if host.startswith("*") and entry.resolution is not Resolution.DYNAMIC_DNS:
        return []
    result = []
    for allocated in entry.status_addresses:
        ip = parse_ip(allocated.value)
        if allocated.host == host and ip is not None:
            result.append(network_address(network, ip))
    return result


def service_entry_infos(
    entry: ServiceEntry,
    namespace: Namespace | None,
    waypoints: Mapping[str, Waypoint],
    context: Context,
) -> list[ServiceInfo]:
    """One ServiceInfo per host of a ServiceEntry."""
    namespace_annotations = namespace.annotations if namespace is not None else EMPTY_LABELS
    if entry.resolution is Resolution.NONE:
        balancing: wl.LoadBalancing | None = wl.LoadBalancing(
            mode=wl.LoadBalancing.PASSTHROUGH, health_policy=wl.LoadBalancing.ALLOW_ALL
        )
    else:
        balancing = _distribution_load_balancing(
            traffic_distribution(None, entry.annotations, namespace_annotations)
        )
    binding = service_binding(entry, namespace, waypoints)
    addresses = [network_address_from_cidr(context.network, cidr) for cidr in entry.addresses]
    ports = tuple((port.number, port.target_port or port.number) for port in entry.ports)
    port_names = {port.number: PortName(port.name) for port in entry.ports}
    infos = []
    for host in entry.hosts:
        message = wl.Service(
            name=entry.name,
            namespace=entry.namespace,
            hostname=host,
            addresses=addresses or _auto_allocated(entry, host, context.network),
            subject_alt_names=entry.subject_alt_names,
        )
        for port in entry.ports:
            message.ports.add(
                service_port=port.number,
                target_port=port.target_port or port.number,
                app_protocol=protocol_from_name(port.protocol),
            )
        if balancing is not None:
            message.load_balancing.CopyFrom(balancing)
        _set_waypoint(message, entry, namespace, binding, waypoints)
        infos.append(
            ServiceInfo(
                source=entry.key,
                message=message,
                ports=ports,
                port_names=port_names,
                selector=entry.workload_selector or EMPTY_LABELS,
                created=_created(entry),
                waypoint=binding.waypoint,
            )
        )
    return infos


# --- Hostname collisions ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome for one hostname: the winner per namespace, and the canonical one."""

    winners: Mapping[str, ServiceInfo]
    canonical: ServiceInfo | None


def select_services(candidates: Iterable[ServiceInfo]) -> Selection:
    """Per namespace a Kubernetes Service wins, else the oldest ServiceEntry; losers vanish.

    The canonical entry (used by namespaces without their own) is the
    Kubernetes Service if there is one, else the oldest winning ServiceEntry.
    """
    winners: dict[str, ServiceInfo] = {}
    for info in sorted(candidates, key=lambda i: (not i.is_kube, i.created, i.source)):
        winners.setdefault(info.namespace, info)
    canonical = None
    for info in winners.values():
        if info.is_kube:
            canonical = info
            break
        if canonical is None or (info.created, info.source) < (canonical.created, canonical.source):
            canonical = info
    return Selection(winners, canonical)


def final_message(info: ServiceInfo, selection: Selection) -> wl.Service:
    """The Service as sent: a ServiceEntry gets ``canonical`` when it was chosen."""
    if info.is_kube or selection.canonical is not info:
        return info.message
    message = wl.Service()
    message.CopyFrom(info.message)
    message.canonical = True
    return message
