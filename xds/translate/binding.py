"""Waypoint binding: which Gateways are waypoints, and who is bound to which one.

Shared by the ztunnel translator (``Workload.waypoint`` / ``Service.waypoint``)
and the waypoint translator (what a waypoint serves). Pure: everything is
computed from model objects; nothing here knows about protobuf.

Rules (ambient-index §5, istiod ``waypoints.go``):

* **A Gateway is a waypoint once it has an address.** istiod treats any Gateway
  with ``status.addresses`` as a (ready) waypoint, whatever its class, so that
  ``istio-waypoint`` waypoints, sandwiched ``istio`` gateways and east-west
  gateways are all addressable by ``istio.io/use-waypoint``; we do the same and
  do not filter by GatewayClass. Nobody writes Gateway status in file mode (and
  no istiod deployment controller runs next to us), so when ``status.addresses``
  is empty we fall back to ``spec.addresses``: a manifest states its waypoint's
  address in either place. A Gateway with neither is "not ready" and binds
  nothing, exactly like a Gateway istiod has not yet given an address.
* The address placed on the wire is the first ``Hostname`` address (as
  ``{namespace, hostname}``), else the first IP, with HBONE port 15008.
* ``istio.io/waypoint-for`` (Gateway label, else GatewayClass label, default
  ``service``) says what may bind: ``service``, ``workload``, ``all``, ``none``.
* Precedence for an object: being an instance of a waypoint (label
  ``gateway.networking.k8s.io/gateway-name``) wins, then the object's own
  ``istio.io/use-waypoint`` (``none`` opts out; a missing waypoint means *no*
  waypoint, without falling back to the namespace), then the namespace label,
  then the traffic-type check. ``istio.io/use-waypoint-namespace`` is read from
  the same object that carried ``use-waypoint``.
* Cross-namespace use is checked against the allowedRoutes of the bound
  listener (inbound binding port, else the ``istio.io/PROXY`` listener for a
  portless PROXY binding), else of the ``HBONE``/15008 listener, else ``Same``.
* Sandwich: ``ambient.istio.io/waypoint-inbound-binding`` (Gateway, else
  GatewayClass) = ``PROXY``/``NONE`` with an optional ``/<port>`` gives the
  waypoint's own pods an ``application_tunnel``.

Typical use::

    bindings = WaypointBindings.build(mesh)
    bindings.services_for("infra", "waypoint")   # Services/ServiceEntries bound to it
    bindings.workloads_for("infra", "waypoint")  # Pods/WorkloadEntries bound to it
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import ip_address

from xds.model import wellknown
from xds.model.core import Namespace, Pod, Service
from xds.model.frozen import EMPTY_LABELS, Labels
from xds.model.gateway import (
    HOSTNAME_TYPE,
    IP_ADDRESS_TYPE,
    AllowedRoutes,
    FromNamespaces,
    Gateway,
    GatewayAddress,
    GatewayClass,
)
from xds.model.mesh import Mesh
from xds.model.meta import IPAddress, KubeObject, ObjectKey
from xds.model.networking import ServiceEntry, WorkloadEntry

HBONE_PORT = 15008
"""istiod hard-codes the HBONE port of every waypoint address."""

PROXY_LISTENER_PROTOCOL = "istio.io/PROXY"
"""Listener protocol that marks a sandwiched gateway's PROXY-protocol inbound port."""

_OPT_OUT = "none"
_SAME_NAMESPACE = AllowedRoutes(FromNamespaces.SAME)


class TrafficType(StrEnum):
    """Values of ``istio.io/waypoint-for``; anything else binds nothing."""

    SERVICE = "service"
    WORKLOAD = "workload"
    ALL = "all"
    NONE = "none"


class TunnelProtocol(StrEnum):
    """``ApplicationTunnel.Protocol`` for a sandwiched gateway's pods."""

    NONE = "NONE"
    PROXY = "PROXY"


@dataclass(frozen=True, slots=True)
class InboundBinding:
    """How ztunnel delivers inbound traffic to the pods of a sandwiched waypoint."""

    protocol: TunnelProtocol
    port: int = 0
    """0 keeps the original destination port."""


@dataclass(frozen=True, slots=True)
class WaypointAddress:
    """Where clients send traffic for a waypoint: a hostname in a namespace, or an IP.

    Exactly one of ``hostname`` and ``ip`` is set. ``network`` matters for the
    IP form only (the local network, as istiod uses).
    """

    namespace: str
    hostname: str | None = None
    ip: IPAddress | None = None
    network: str = ""
    hbone_port: int = HBONE_PORT


@dataclass(frozen=True, slots=True)
class Waypoint:
    """A Gateway acting as a waypoint, with everything binding needs."""

    namespace: str
    name: str
    gateway_class_name: str
    address: WaypointAddress | None
    """``None`` when the Gateway's addresses have no Hostname or IP entry."""
    traffic_type: str = TrafficType.SERVICE
    """Kept verbatim: an unknown value binds nothing, as upstream."""
    service_accounts: tuple[str, ...] = ()
    """Sorted, de-duplicated service accounts of the waypoint's own pods."""
    inbound_binding: InboundBinding | None = None
    allowed_routes: AllowedRoutes = _SAME_NAMESPACE

    @property
    def key(self) -> str:
        """``"<namespace>/<name>"``, the name bindings and status use."""
        return f"{self.namespace}/{self.name}"

    def serves_services(self) -> bool:
        return self.traffic_type in (TrafficType.SERVICE, TrafficType.ALL)

    def serves_workloads(self) -> bool:
        return self.traffic_type in (TrafficType.WORKLOAD, TrafficType.ALL)

    def allows_from(self, namespace: str, namespace_labels: Mapping[str, str]) -> bool:
        """Whether objects in ``namespace`` may attach (the allowedRoutes check)."""
        match self.allowed_routes.namespaces_from:
            case FromNamespaces.ALL:
                return True
            case FromNamespaces.SELECTOR:
                selector = self.allowed_routes.selector
                return selector is not None and selector.matches(namespace_labels)
            case _:
                return namespace == self.namespace


# --- Gateway -> Waypoint ------------------------------------------------------------


def parse_inbound_binding(value: str) -> InboundBinding | None:
    """``PROXY``, ``PROXY/15088``, ``NONE`` or ``NONE/<port>``; ``None`` when invalid.

    An unparseable port keeps the binding with port 0 (upstream logs and
    carries on); a port outside 1-65535 is treated the same way, since ztunnel
    cannot use it.
    """
    parts = value.split("/")
    if len(parts) > 2:
        return None
    try:
        protocol = TunnelProtocol(parts[0])
    except ValueError:
        return None
    port = 0
    if len(parts) == 2 and parts[1].isascii() and parts[1].isdigit():
        number = int(parts[1])
        port = number if number <= 65535 else 0
    return InboundBinding(protocol, port)


def _inbound_binding(gateway: Gateway, gateway_class: GatewayClass | None) -> InboundBinding | None:
    value = gateway.annotations.get(wellknown.WAYPOINT_INBOUND_BINDING)
    if value is None and gateway_class is not None:
        value = gateway_class.annotations.get(wellknown.WAYPOINT_INBOUND_BINDING)
    return None if value is None else parse_inbound_binding(value)


def _allowed_routes(gateway: Gateway, binding: InboundBinding | None) -> AllowedRoutes:
    if binding is not None:
        for listener in gateway.listeners:
            if binding.port:
                if listener.port == binding.port:
                    return listener.allowed_routes
            elif (
                binding.protocol is TunnelProtocol.PROXY
                and listener.protocol == PROXY_LISTENER_PROTOCOL
            ):
                return listener.allowed_routes
    for listener in gateway.listeners:
        if listener.protocol == "HBONE" and listener.port == HBONE_PORT:
            return listener.allowed_routes
    return _SAME_NAMESPACE


def published_addresses(gateway: Gateway) -> tuple[GatewayAddress, ...]:
    """The addresses that make ``gateway`` a waypoint: status, else spec (file mode)."""
    return gateway.status_addresses or gateway.addresses


def _waypoint_address(gateway: Gateway, network: str) -> WaypointAddress | None:
    addresses = published_addresses(gateway)
    for address in addresses:
        if address.type == HOSTNAME_TYPE:
            return WaypointAddress(namespace=gateway.namespace, hostname=address.value)
    for address in addresses:
        if address.type == IP_ADDRESS_TYPE:
            try:
                ip = ip_address(address.value)
            except ValueError:
                continue
            return WaypointAddress(namespace=gateway.namespace, ip=ip, network=network)
    return None


def waypoint_from_gateway(
    gateway: Gateway,
    gateway_class: GatewayClass | None,
    instances: Iterable[Pod],
    network: str,
) -> Waypoint | None:
    """The Waypoint for ``gateway``, or ``None`` while it has no address (not ready).

    ``instances`` are the Gateway's own pods (label
    ``gateway.networking.k8s.io/gateway-name=<name>`` in its namespace);
    ``network`` is the local network, used for an IP-form address.
    """
    if not published_addresses(gateway):
        return None
    traffic_type: str = TrafficType.SERVICE
    if gateway_class is not None:
        traffic_type = gateway_class.labels.get(wellknown.WAYPOINT_FOR, traffic_type)
    traffic_type = gateway.labels.get(wellknown.WAYPOINT_FOR, traffic_type)
    binding = _inbound_binding(gateway, gateway_class)
    return Waypoint(
        namespace=gateway.namespace,
        name=gateway.name,
        gateway_class_name=gateway.gateway_class_name,
        address=_waypoint_address(gateway, network),
        traffic_type=traffic_type,
        service_accounts=tuple(sorted({pod.service_account for pod in instances})),
        inbound_binding=binding,
        allowed_routes=_allowed_routes(gateway, binding),
    )


def local_network(mesh: Mesh) -> str:
    """The local network: the root namespace's ``topology.istio.io/network`` label.

    istiod reads it from the system namespace; we use the root namespace (the
    same namespace in a standard install), falling back to ``MeshConfig.network``.
    """
    root = mesh.namespace(mesh.config.root_namespace)
    if root is not None and wellknown.NETWORK in root.labels:
        return root.labels[wellknown.NETWORK]
    return mesh.config.network


def waypoint_for_gateway(
    mesh: Mesh, gateway: Gateway, network: str | None = None
) -> Waypoint | None:
    """``waypoint_from_gateway`` with the class and instance pods looked up in ``mesh``."""
    gateway_class = mesh.get(GatewayClass, "", gateway.gateway_class_name)
    instances = mesh.pods_with_labels(gateway.namespace, {wellknown.GATEWAY_NAME: gateway.name})
    return waypoint_from_gateway(
        gateway, gateway_class, instances, local_network(mesh) if network is None else network
    )


def all_waypoints(mesh: Mesh, network: str | None = None) -> dict[str, Waypoint]:
    """Every waypoint in the mesh, keyed ``"<namespace>/<name>"``."""
    if network is None:
        network = local_network(mesh)
    result = {}
    for gateway in mesh.objects(Gateway):
        waypoint = waypoint_for_gateway(mesh, gateway, network)
        if waypoint is not None:
            result[waypoint.key] = waypoint
    return result


# --- Binding an object ---------------------------------------------------------------


class BindingFailure(StrEnum):
    """Reasons of a failed ``istio.io/WaypointBound`` condition."""

    NOT_READY = "WaypointIsNotReady"
    ATTACHMENT_DENIED = "AttachmentDenied"
    UNSUPPORTED_TRAFFIC_TYPE = "UnsupportedTrafficType"
    CANARY_INVALID_WEIGHT = "CanaryInvalidWeight"
    CANARY_SAME_AS_PRIMARY = "CanarySameAsPrimary"


@dataclass(frozen=True, slots=True)
class BindingError:
    reason: BindingFailure
    message: str


@dataclass(frozen=True, slots=True)
class WaypointChoice:
    """The outcome of resolving an object's waypoint: a waypoint, an error, or neither."""

    waypoint: Waypoint | None = None
    error: BindingError | None = None


NO_BINDING = WaypointChoice()


@dataclass(frozen=True, slots=True)
class WaypointRef:
    """A waypoint named by ``istio.io/use-waypoint``; ``from_namespace`` says where the
    label was found (the namespace object rather than the object itself)."""

    namespace: str
    name: str
    from_namespace: bool

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def requested_waypoint(
    namespace: str, labels: Mapping[str, str], namespace_labels: Mapping[str, str]
) -> WaypointRef | None:
    """The waypoint an object asks for by label, before readiness and type checks.

    ``None`` when neither the object nor its namespace names one, or when the
    nearest ``use-waypoint`` label is ``none``.
    """
    for source, from_namespace in ((labels, False), (namespace_labels, True)):
        name = source.get(wellknown.USE_WAYPOINT)
        if name is None:
            continue
        if name == _OPT_OUT:
            return None
        waypoint_namespace = source.get(wellknown.USE_WAYPOINT_NAMESPACE, namespace)
        return WaypointRef(waypoint_namespace, name, from_namespace)
    return None


def _resolve(
    ref: WaypointRef | None,
    namespace: str,
    namespace_labels: Mapping[str, str],
    waypoints: Mapping[str, Waypoint],
) -> WaypointChoice:
    if ref is None:
        return NO_BINDING
    waypoint = waypoints.get(ref.key)
    if waypoint is None:
        return WaypointChoice(
            error=BindingError(BindingFailure.NOT_READY, f'waypoint "{ref.key}" is not ready')
        )
    if not waypoint.allows_from(namespace, namespace_labels):
        return WaypointChoice(
            error=BindingError(
                BindingFailure.ATTACHMENT_DENIED,
                f'we are not permitted to attach to waypoint "{ref.key}" (missing allowedRoutes?)',
            )
        )
    return WaypointChoice(waypoint)


def _unsupported(waypoint: Waypoint, traffic: TrafficType) -> WaypointChoice:
    return WaypointChoice(
        error=BindingError(
            BindingFailure.UNSUPPORTED_TRAFFIC_TYPE,
            f'attempting to bind to traffic type "{traffic}" which the waypoint '
            f'"{waypoint.key}" does not support',
        )
    )


def _labels_of(namespace: Namespace | None) -> Labels:
    return namespace.labels if namespace is not None else EMPTY_LABELS


def is_waypoint_managed_service(labels: Mapping[str, str]) -> bool:
    """Services of waypoints and east-west gateways never get a waypoint themselves."""
    return labels.get(wellknown.GATEWAY_MANAGED) in (
        wellknown.MANAGED_BY_MESH_CONTROLLER,
        wellknown.MANAGED_BY_EASTWEST_CONTROLLER,
    )


def service_binding(
    service: Service | ServiceEntry,
    namespace: Namespace | None,
    waypoints: Mapping[str, Waypoint],
) -> WaypointChoice:
    """The waypoint for traffic addressed to a Service or ServiceEntry (``Service.waypoint``)."""
    if is_waypoint_managed_service(service.labels):
        return NO_BINDING
    namespace_labels = _labels_of(namespace)
    ref = requested_waypoint(service.namespace, service.labels, namespace_labels)
    binding = _resolve(ref, service.namespace, namespace_labels, waypoints)
    waypoint = binding.waypoint
    if waypoint is not None and not waypoint.serves_services():
        return _unsupported(waypoint, TrafficType.SERVICE)
    return binding


def workload_binding(
    namespace_name: str,
    labels: Mapping[str, str],
    namespace: Namespace | None,
    waypoints: Mapping[str, Waypoint],
) -> WaypointChoice:
    """The waypoint for traffic addressed to a workload directly (``Workload.waypoint``).

    Takes labels rather than an object because ServiceEntry inline endpoints
    bind with the endpoint's labels in the ServiceEntry's namespace. Callers
    check ``instance_of`` first: a waypoint's own pods never get a waypoint.
    A namespace-wide waypoint that serves only services is silently not used
    for workloads; the same waypoint named on the workload itself is an error.
    """
    namespace_labels = _labels_of(namespace)
    ref = requested_waypoint(namespace_name, labels, namespace_labels)
    binding = _resolve(ref, namespace_name, namespace_labels, waypoints)
    waypoint = binding.waypoint
    if waypoint is not None and not waypoint.serves_workloads():
        if ref is not None and ref.from_namespace:
            return NO_BINDING
        return _unsupported(waypoint, TrafficType.WORKLOAD)
    return binding


def instance_of(
    namespace: str, labels: Mapping[str, str], waypoints: Mapping[str, Waypoint]
) -> Waypoint | None:
    """The waypoint whose own pod (or WorkloadEntry) this is, if any."""
    name = labels.get(wellknown.GATEWAY_NAME)
    return None if not name else waypoints.get(f"{namespace}/{name}")


def waypoint_key_of_instance(namespace: str, labels: Mapping[str, str]) -> str | None:
    """``"<ns>/<gateway>"`` when the labels mark a waypoint instance (ready or not)."""
    name = labels.get(wellknown.GATEWAY_NAME)
    return f"{namespace}/{name}" if name else None


# --- Weighted canary waypoints (Service.weighted_waypoints) ------------------------


@dataclass(frozen=True, slots=True)
class WeightedWaypoint:
    waypoint: Waypoint
    weight: int


def _canary_ref(
    obj: KubeObject, namespace: Namespace | None
) -> tuple[WaypointRef | None, Mapping[str, str]]:
    """The canary reference, and the annotations its weight is read from.

    The namespace's canary settings are consulted only when the object has no
    ``use-waypoint`` of its own, so canary and primary come from the same level.
    """
    labels: Mapping[str, str] = obj.labels
    annotations: Mapping[str, str] = obj.annotations
    inherit = namespace is not None and wellknown.USE_WAYPOINT not in obj.labels
    if inherit and namespace is not None:
        if (
            wellknown.USE_WAYPOINT_CANARY not in labels
            and wellknown.USE_WAYPOINT_CANARY in namespace.labels
        ):
            labels = namespace.labels
        if wellknown.USE_WAYPOINT_CANARY_WEIGHT not in annotations:
            annotations = namespace.annotations
    name = labels.get(wellknown.USE_WAYPOINT_CANARY, "")
    if name in ("", _OPT_OUT):
        return None, annotations
    waypoint_namespace = labels.get(wellknown.USE_WAYPOINT_CANARY_NAMESPACE, obj.namespace)
    return WaypointRef(waypoint_namespace, name, inherit), annotations


def _canary_weight(annotations: Mapping[str, str]) -> int | None:
    """0-100 from the weight annotation (missing means 0); ``None`` when invalid."""
    value = annotations.get(wellknown.USE_WAYPOINT_CANARY_WEIGHT)
    if value is None:
        return 0
    text = value[1:] if value[:1] in "+-" else value
    if not (text.isascii() and text.isdigit()):
        return None
    weight = int(value)
    return weight if 0 <= weight <= 100 else None


def canary_waypoints(
    service: Service | ServiceEntry,
    namespace: Namespace | None,
    primary: WaypointChoice,
    waypoints: Mapping[str, Waypoint],
) -> tuple[tuple[WeightedWaypoint, ...], BindingError | None]:
    """``[(primary, 100-w), (canary, w)]`` for a valid canary, else ``()`` (and why not)."""
    if primary.waypoint is None or primary.error is not None:
        return (), None
    ref, annotations = _canary_ref(service, namespace)
    if ref is None:
        return (), None
    if ref.key == primary.waypoint.key:
        return (), BindingError(
            BindingFailure.CANARY_SAME_AS_PRIMARY,
            f'canary waypoint "{ref.key}" is the same as the primary',
        )
    weight = _canary_weight(annotations)
    if weight is None:
        return (), BindingError(
            BindingFailure.CANARY_INVALID_WEIGHT,
            f'canary waypoint "{ref.key}" has an invalid weight',
        )
    canary = _resolve(
        WaypointRef(ref.namespace, ref.name, False),
        service.namespace,
        _labels_of(namespace),
        waypoints,
    )
    if canary.waypoint is None:
        return (), canary.error
    if not canary.waypoint.serves_services():
        return (), _unsupported(canary.waypoint, TrafficType.SERVICE).error
    return (
        WeightedWaypoint(primary.waypoint, 100 - weight),
        WeightedWaypoint(canary.waypoint, weight),
    ), None


# --- The whole mesh: who is bound to which waypoint --------------------------------


BoundService = Service | ServiceEntry
BoundWorkload = Pod | WorkloadEntry


@dataclass
class WaypointBindings:
    """Bindings of every Service, ServiceEntry, Pod and WorkloadEntry in a mesh.

    A snapshot: build it again (``build``) after the mesh changes. Lists are
    ordered by namespace then name. ServiceEntry inline endpoints are not
    listed as workloads; they reach a waypoint through their ServiceEntry.
    """

    waypoints: dict[str, Waypoint]
    _services: dict[str, list[BoundService]] = field(default_factory=dict)
    _workloads: dict[str, list[BoundWorkload]] = field(default_factory=dict)
    _waypoint_of: dict[ObjectKey, str] = field(default_factory=dict)
    _service_waypoint_of: dict[ObjectKey, str] = field(default_factory=dict)

    @classmethod
    def build(cls, mesh: Mesh) -> WaypointBindings:
        waypoints = all_waypoints(mesh)
        bindings = cls(waypoints)
        if not waypoints:
            return bindings
        namespaces: dict[str, Namespace | None] = {}

        def namespace_of(name: str) -> Namespace | None:
            if name not in namespaces:
                namespaces[name] = mesh.namespace(name)
            return namespaces[name]

        services: list[BoundService] = [*mesh.objects(Service), *mesh.objects(ServiceEntry)]
        for service in sorted(services, key=_order):
            bound = service_binding(service, namespace_of(service.namespace), waypoints).waypoint
            if bound is not None:
                bindings._services.setdefault(bound.key, []).append(service)
                bindings._service_waypoint_of[service.key] = bound.key
        workloads: list[BoundWorkload] = [*mesh.objects(Pod), *mesh.objects(WorkloadEntry)]
        for workload in sorted(workloads, key=_order):
            labels = (
                workload.workload_labels if isinstance(workload, WorkloadEntry) else workload.labels
            )
            if instance_of(workload.namespace, labels, waypoints) is not None:
                continue
            bound = workload_binding(
                workload.namespace, labels, namespace_of(workload.namespace), waypoints
            ).waypoint
            if bound is not None:
                bindings._workloads.setdefault(bound.key, []).append(workload)
                bindings._waypoint_of[workload.key] = bound.key
        return bindings

    def rebind_services(self, mesh: Mesh, keys: Iterable[ObjectKey]) -> set[str]:
        """Bring the bindings of these Services up to date, in place (as ``rebind_pods``);
        returns the keys of the waypoints whose bound services changed."""
        touched: set[str] = set()
        for key in keys:
            old = self._service_waypoint_of.pop(key, None)
            if old is not None:
                self._services[old] = [s for s in self._services[old] if s.key != key]
                touched.add(old)
            service = mesh.get_by_key(key)
            if not isinstance(service, Service):
                continue
            bound = service_binding(
                service, mesh.namespace(service.namespace), self.waypoints
            ).waypoint
            if bound is not None:
                bisect.insort(self._services.setdefault(bound.key, []), service, key=_order)
                self._service_waypoint_of[key] = bound.key
                touched.add(bound.key)
        return touched

    def rebind_pods(self, mesh: Mesh, keys: Iterable[ObjectKey]) -> set[str]:
        """Bring the workload bindings of these pods up to date, in place.

        Only for changes that touch nothing but plain pods (no waypoint instance
        pods, which change the waypoints themselves): then Service bindings and
        the waypoints stay as they are. Returns the keys of the waypoints whose
        bound workloads changed (the old and the new binding of each pod)."""
        touched: set[str] = set()
        for key in keys:
            old = self._waypoint_of.pop(key, None)
            if old is not None:
                self._workloads[old] = [w for w in self._workloads[old] if w.key != key]
                touched.add(old)
            pod = mesh.get_by_key(key)
            if not isinstance(pod, Pod):
                continue
            if instance_of(pod.namespace, pod.labels, self.waypoints) is not None:
                continue
            bound = workload_binding(
                pod.namespace, pod.labels, mesh.namespace(pod.namespace), self.waypoints
            ).waypoint
            if bound is not None:
                workloads = self._workloads.setdefault(bound.key, [])
                bisect.insort(workloads, pod, key=_order)
                self._waypoint_of[key] = bound.key
                touched.add(bound.key)
        return touched

    def get(self, namespace: str, name: str) -> Waypoint | None:
        return self.waypoints.get(f"{namespace}/{name}")

    def services_for(self, namespace: str, name: str) -> list[BoundService]:
        """Services and ServiceEntries whose service-addressed traffic goes to this waypoint."""
        return list(self._services.get(f"{namespace}/{name}", ()))

    def workloads_for(self, namespace: str, name: str) -> list[BoundWorkload]:
        """Pods and WorkloadEntries whose workload-addressed traffic goes to this waypoint."""
        return list(self._workloads.get(f"{namespace}/{name}", ()))


def _order(obj: KubeObject) -> tuple[str, str, str]:
    return obj.namespace, obj.name, obj.kind
