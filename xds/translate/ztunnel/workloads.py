"""Pods, WorkloadEntries, ServiceEntry endpoints and EndpointSlices → ``istio.workload.Workload``.

ambient-index §2. Each builder gets everything it depends on as arguments
(the Services that select the workload, its policy names, the waypoints), so
that the translator decides what to recompute and these stay pure functions.
Results are ``AddressEntry``: the ``Address`` wrapper ready to serialize, its
resource name (the uid) and the ``<network>/<ip>`` aliases istiod sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xds.model import wellknown
from xds.model.core import (
    AddressType,
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    PodPhase,
    Protocol,
)
from xds.model.frozen import EMPTY_LABELS
from xds.model.meta import IPAddress
from xds.model.networking import Resolution, ServiceEntry, WorkloadEndpoint, WorkloadEntry
from xds.proto.istio.workload import workload_pb2 as wl
from xds.translate import enrollment
from xds.translate import workload_names as names
from xds.translate.binding import (
    Waypoint,
    instance_of,
    workload_binding,
)
from xds.translate.ztunnel.addresses import gateway_address, parse_ip, workload_aliases
from xds.translate.ztunnel.context import Context
from xds.translate.ztunnel.services import ServiceInfo

_APPLICATION_TUNNEL = {"NONE": wl.ApplicationTunnel.NONE, "PROXY": wl.ApplicationTunnel.PROXY}


@dataclass(frozen=True, slots=True)
class AddressEntry:
    """One Address resource before serialization."""

    name: str
    message: wl.Address
    aliases: tuple[str, ...] = ()


# --- Shared pieces ---------------------------------------------------------------


def _set_waypoint_fields(
    workload: wl.Workload,
    namespace_name: str,
    labels: Mapping[str, str],
    namespace: Namespace | None,
    waypoints: Mapping[str, Waypoint],
) -> None:
    """``waypoint`` or, for a waypoint's own instance, ``application_tunnel``."""
    instance = instance_of(namespace_name, labels, waypoints)
    if instance is not None:
        binding = instance.inbound_binding
        if binding is not None:
            workload.application_tunnel.protocol = _APPLICATION_TUNNEL[binding.protocol]
            workload.application_tunnel.port = binding.port
        return
    waypoint = workload_binding(namespace_name, labels, namespace, waypoints).waypoint
    if waypoint is not None and waypoint.address is not None:
        workload.waypoint.CopyFrom(gateway_address(waypoint.address))


def _set_tunnel(workload: wl.Workload, tunnel: tuple[wl.TunnelProtocol, bool]) -> None:
    workload.tunnel_protocol, workload.native_tunnel = tunnel


def _split_locality(locality: str) -> wl.Locality | None:
    if not locality:
        return None
    parts = locality.split("/")
    region = parts[0]
    zone = parts[1] if len(parts) > 1 else ""
    subzone = parts[2] if len(parts) > 2 else ""
    if not (region or zone or subzone):
        return None
    return wl.Locality(region=region, zone=zone, subzone=subzone)


def node_locality(node: Node | None) -> wl.Locality | None:
    """A pod's locality from its Node's topology labels; ``None`` when there are none."""
    if node is None:
        return None
    labels = node.labels
    region = labels.get(wellknown.REGION, "")
    zone = labels.get(wellknown.ZONE, "")
    subzone = labels.get(wellknown.SUBZONE, "")
    if not (region or zone or subzone):
        return None
    return wl.Locality(region=region, zone=zone, subzone=subzone)


def _set_address_or_hostname(workload: wl.Workload, address: str) -> list[IPAddress]:
    ip = parse_ip(address)
    if ip is not None:
        workload.addresses.append(ip.packed)
        return [ip]
    if address:
        workload.hostname = address
    return []


# --- services map ------------------------------------------------------------------


def pod_service_ports(info: ServiceInfo, pod: Pod) -> list[tuple[int, int]]:
    """The ``(service_port, target_port)`` list a pod publishes for one Service (§2.5).

    A named targetPort resolves against the pod's container ports; when the
    pod has no such port that Service port is left out for this pod only.
    ServiceEntry ports match container ports by the port's name.
    """
    result = []
    for service_port, target in info.ports:
        names_ = info.port_names.get(service_port)
        if names_ is not None and names_.target_port_name:
            container = pod.container_port_named(names_.target_port_name)
            if container is None:
                continue
            target = container.port
        elif names_ is not None and not info.is_kube and names_.port_name:
            container = pod.container_port_named(names_.port_name)
            if container is not None:
                target = container.port
            elif target == 0:
                target = service_port
        result.append((service_port, target))
    return result


def entry_service_ports(info: ServiceInfo, ports: Mapping[str, int]) -> list[tuple[int, int]]:
    """The same for a WorkloadEntry or ServiceEntry endpoint, using its ``ports`` map."""
    result = []
    for service_port, target in info.ports:
        names_ = info.port_names.get(service_port)
        if names_ is not None:
            if info.is_kube and names_.target_port_name:
                if names_.target_port_name not in ports:
                    continue
                target = ports[names_.target_port_name]
            elif names_.port_name in ports:
                target = ports[names_.port_name]
            elif not info.is_kube and target == 0:
                target = service_port
        result.append((service_port, target))
    return result


def _add_services(
    workload: wl.Workload, services: Iterable[tuple[str, list[tuple[int, int]]]]
) -> None:
    for key, ports in services:
        port_list = workload.services[key]
        for service_port, target_port in ports:
            port_list.ports.add(service_port=service_port, target_port=target_port)


# --- Pods ------------------------------------------------------------------------


def pod_workload(
    pod: Pod,
    *,
    namespace: Namespace | None,
    node: Node | None,
    services: Sequence[ServiceInfo],
    policies: Sequence[str],
    waypoints: Mapping[str, Waypoint],
    context: Context,
) -> AddressEntry | None:
    """A pod's Workload; ``None`` for terminal pods and pods without an IP yet.

    Pending pods with an IP are included (UNHEALTHY), so clients can already
    resolve them; readiness then flips ``status``.
    """
    if pod.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED) or not pod.pod_ips:
        return None
    address = wl.Address()
    workload = address.workload
    workload.uid = names.pod_uid(context.cluster_id, pod.namespace, pod.name)
    workload.name = pod.name
    workload.namespace = pod.namespace
    workload.addresses.extend(ip.packed for ip in pod.pod_ips)
    workload.network = context.network
    workload.service_account = pod.service_account
    workload.node = pod.node_name
    workload.cluster_id = context.cluster_id
    workload.trust_domain = context.trust_domain
    workload.status = wl.HEALTHY if pod.ready and not pod.terminating else wl.UNHEALTHY
    namespace_labels = namespace.labels if namespace is not None else EMPTY_LABELS
    _set_tunnel(workload, enrollment.pod_tunnel(pod, namespace_labels))
    _set_waypoint_fields(workload, pod.namespace, pod.labels, namespace, waypoints)
    _add_services(workload, ((info.key, pod_service_ports(info, pod)) for info in services))
    workload.authorization_policies.extend(policies)
    workload.workload_name = names.pod_workload_name(pod)
    workload.workload_type = wl.POD
    workload.canonical_name = names.canonical_name(pod.labels, workload.workload_name)
    workload.canonical_revision = names.canonical_revision(pod.labels)
    locality = node_locality(node)
    if locality is not None:
        workload.locality.CopyFrom(locality)
    if pod.host_network:
        workload.network_mode = wl.HOST_NETWORK
    return AddressEntry(workload.uid, address, workload_aliases(context.network, pod.pod_ips))


# --- WorkloadEntries and ServiceEntry endpoints -------------------------------------


def _endpoint_workload(
    *,
    uid: str,
    name: str,
    namespace_name: str,
    endpoint: WorkloadEndpoint,
    services: Iterable[tuple[str, list[tuple[int, int]]]],
    policies: Sequence[str],
    context: Context,
) -> tuple[wl.Address, list[IPAddress]]:
    address = wl.Address()
    workload = address.workload
    workload.uid = uid
    workload.name = name
    workload.namespace = namespace_name
    ips = _set_address_or_hostname(workload, endpoint.address)
    workload.network = endpoint.network or context.network
    workload.service_account = endpoint.service_account
    workload.cluster_id = context.cluster_id
    workload.trust_domain = context.trust_domain
    workload.status = wl.HEALTHY
    _add_services(workload, services)
    workload.authorization_policies.extend(policies)
    locality = _split_locality(endpoint.locality)
    if locality is not None:
        workload.locality.CopyFrom(locality)
    if endpoint.weight > 0:
        workload.capacity.value = endpoint.weight
    workload.workload_type = wl.POD
    return address, ips


def workload_entry_workload(
    entry: WorkloadEntry,
    *,
    namespace: Namespace | None,
    services: Sequence[ServiceInfo],
    policies: Sequence[str],
    waypoints: Mapping[str, Waypoint],
    context: Context,
) -> AddressEntry:
    """A WorkloadEntry's Workload (always HEALTHY; istiod has no health for them)."""
    labels = entry.workload_labels
    endpoint = WorkloadEndpoint(
        address=entry.address,
        ports=entry.ports,
        labels=labels,
        network=entry.network,
        locality=entry.locality,
        weight=entry.weight,
        service_account=entry.service_account,
    )
    address, ips = _endpoint_workload(
        uid=names.workload_entry_uid(context.cluster_id, entry.namespace, entry.name),
        name=entry.name,
        namespace_name=entry.namespace,
        endpoint=endpoint,
        services=((info.key, entry_service_ports(info, entry.ports)) for info in services),
        policies=policies,
        context=context,
    )
    workload = address.workload
    _set_waypoint_fields(workload, entry.namespace, labels, namespace, waypoints)
    workload.workload_name = names.workload_entry_workload_name(
        entry.name, labels, entry.annotations
    )
    workload.canonical_name = names.canonical_name(labels, workload.workload_name)
    workload.canonical_revision = names.canonical_revision(labels)
    _set_tunnel(workload, enrollment.declared_tunnel(labels, entry.annotations))
    return AddressEntry(workload.uid, address, workload_aliases(workload.network, ips))


def has_implicit_endpoints(entry: ServiceEntry) -> bool:
    """A DNS ServiceEntry without endpoints or selector resolves each host as an endpoint."""
    return (
        not entry.endpoints
        and entry.workload_selector is None
        and entry.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN, Resolution.DYNAMIC_DNS)
    )


def service_entry_workloads(
    entry: ServiceEntry,
    *,
    namespace: Namespace | None,
    services: Sequence[ServiceInfo],
    policies: Sequence[str],
    waypoints: Mapping[str, Waypoint],
    context: Context,
) -> list[AddressEntry]:
    """Workloads for a ServiceEntry's inline endpoints (or its implicit DNS endpoints).

    ``services`` are the entry's own hosts that survived hostname
    de-duplication; when none did, nothing is emitted. Policies, canonical
    names and the tunnel come from the ServiceEntry; the waypoint from each
    endpoint's labels, in the entry's namespace. Each endpoint's network is its
    own ``network`` or the local one (istiod lets an endpoint's network leak
    into the following endpoints of the same entry; we do not).
    """
    if not services:
        return []
    implicit = has_implicit_endpoints(entry)
    if implicit:
        endpoints: list[tuple[WorkloadEndpoint, Sequence[ServiceInfo]]] = [
            (WorkloadEndpoint(address=info.hostname), (info,)) for info in services
        ]
    else:
        endpoints = [(endpoint, services) for endpoint in entry.endpoints]
    tunnel = enrollment.declared_tunnel(entry.labels, entry.annotations)
    canonical_name = names.canonical_name(entry.labels, entry.name)
    canonical_revision = names.canonical_revision(entry.labels)
    result = []
    for endpoint, endpoint_services in endpoints:
        address, ips = _endpoint_workload(
            uid=names.service_entry_endpoint_uid(
                context.cluster_id, entry.namespace, entry.name, endpoint.address
            ),
            name=entry.name,
            namespace_name=entry.namespace,
            endpoint=endpoint,
            services=(
                (info.key, entry_service_ports(info, endpoint.ports)) for info in endpoint_services
            ),
            policies=policies,
            context=context,
        )
        workload = address.workload
        if not implicit:
            _set_waypoint_fields(workload, entry.namespace, endpoint.labels, namespace, waypoints)
        workload.workload_name = entry.name
        workload.canonical_name = canonical_name
        workload.canonical_revision = canonical_revision
        _set_tunnel(workload, tunnel)
        result.append(AddressEntry(workload.uid, address, workload_aliases(workload.network, ips)))
    return result


# --- EndpointSlices ----------------------------------------------------------------


def slice_service_ports(endpoint_slice: EndpointSlice, info: ServiceInfo) -> list[tuple[int, int]]:
    """Slice ports joined to the Service's ports by port name (TCP, named, numbered only)."""
    result = []
    for slice_port in endpoint_slice.ports:
        if (
            slice_port.name is None
            or slice_port.port is None
            or slice_port.protocol is not Protocol.TCP
        ):
            continue
        for service_port, _ in info.ports:
            names_ = info.port_names.get(service_port)
            if names_ is not None and names_.port_name == slice_port.name:
                result.append((service_port, slice_port.port))
                break
    return result


def endpoint_slice_workloads(
    endpoint_slice: EndpointSlice, info: ServiceInfo | None, context: Context
) -> list[AddressEntry]:
    """Workloads for slice endpoints that are not pods (manually managed endpoints).

    ``info`` is the Kubernetes Service named by the slice's
    ``kubernetes.io/service-name`` label (``None`` when absent: nothing is
    emitted). Such endpoints get ``HOST_NETWORK`` because the address may be
    shared, and nothing that needs an identity (no policies, no waypoint).
    """
    if info is None or endpoint_slice.address_type is AddressType.FQDN:
        return []
    ports = slice_service_ports(endpoint_slice, info)
    seen: set[str] = set()
    result = []
    for endpoint in endpoint_slice.endpoints:
        if endpoint.target_ref is not None and endpoint.target_ref.kind == Pod.kind:
            continue  # the Pod itself is the Workload
        if not endpoint.addresses or endpoint.addresses[0] in seen:
            continue
        first = endpoint.addresses[0]
        seen.add(first)
        ips = [ip for ip in (parse_ip(text) for text in endpoint.addresses) if ip is not None]
        if len(ips) != len(endpoint.addresses):
            continue
        address = wl.Address()
        workload = address.workload
        workload.uid = names.endpoint_slice_uid(
            context.cluster_id, endpoint_slice.namespace, endpoint_slice.name, first
        )
        workload.name = endpoint_slice.name
        workload.namespace = endpoint_slice.namespace
        workload.addresses.extend(ip.packed for ip in ips)
        workload.network = context.network
        workload.trust_domain = context.trust_domain
        _add_services(workload, [(info.key, ports)])
        workload.status = wl.HEALTHY if endpoint.ready in (None, True) else wl.UNHEALTHY
        workload.cluster_id = context.cluster_id
        workload.network_mode = wl.HOST_NETWORK
        result.append(AddressEntry(workload.uid, address, workload_aliases(context.network, ips)))
    return result
