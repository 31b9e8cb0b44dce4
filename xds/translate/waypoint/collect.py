"""Read one waypoint's inputs out of the mesh (see ``inputs.py``).

Who is bound to a waypoint comes from ``xds.translate.binding`` (shared with
the ztunnel translator, so both sides always agree); this module adds what
only the waypoint needs: service ports and protocols, endpoints, routes,
DestinationRules and the policies that target the waypoint or its services.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from xds.model import wellknown
from xds.model.core import EndpointSlice, Node, Pod, Service
from xds.model.frozen import FrozenMap, is_subset
from xds.model.gateway import (
    GATEWAY_GROUP,
    BackendRef,
    Gateway,
    GatewayClass,
    GRPCRoute,
    GRPCRouteRule,
    HTTPRoute,
    HTTPRouteRule,
    L4RouteRule,
    ReferenceGrant,
    RequestMirror,
    TCPRoute,
    TLSRoute,
)
from xds.model.mesh import DEFAULT_ACCESS_LOG, FileAccessLogProvider, Mesh
from xds.model.meta import KubeObject, parse_ip
from xds.model.networking import (
    DestinationRule,
    Resolution,
    ServiceEntry,
    VirtualService,
    WorkloadEntry,
)
from xds.model.security import AuthorizationAction, AuthorizationPolicy, RequestAuthentication
from xds.model.telemetry import AccessLogMode, Telemetry
from xds.proto.istio.workload import workload_pb2 as wl
from xds.translate.binding import (
    PROXY_LISTENER_PROTOCOL,
    TunnelProtocol,
    WaypointBindings,
    parse_inbound_binding,
)
from xds.translate.enrollment import declared_tunnel, pod_tunnel, supports_http_tunnel
from xds.translate.waypoint import jwt, ports, virtual_service
from xds.translate.waypoint.gateway_api import attaches
from xds.translate.waypoint.inputs import (
    BoundWorkload,
    Endpoint,
    GatewayListener,
    Health,
    Locality,
    ServiceInfo,
    ServicePortInfo,
    WaypointConfig,
    WaypointIdentity,
    WaypointInputs,
    WaypointMode,
)
from xds.translate.waypoint.targeting import targets_service, targets_waypoint
from xds.translate.workload_names import (
    canonical_name,
    canonical_revision,
    pod_workload_name,
    workload_entry_workload_name,
)

AnyRoute = TypeVar("AnyRoute", HTTPRoute, GRPCRoute, TCPRoute, TLSRoute)
AnyPolicy = TypeVar("AnyPolicy", AuthorizationPolicy, RequestAuthentication)
GatewayRoute = HTTPRoute | GRPCRoute | TCPRoute | TLSRoute
WAYPOINT_CLASS = "istio-waypoint"
_EPOCH = datetime.min
_HTTP_LISTENER_PROTOCOLS = frozenset({"HTTP"})


def waypoint_mode(gateway: Gateway, gateway_class: GatewayClass | None) -> WaypointMode | None:
    """How this Gateway works as a waypoint; ``None`` when it is not one we configure.

    An ``istio-waypoint`` (or any Gateway with the HBONE/15008 listener)
    handles HBONE itself. A Gateway captured by ztunnel (label
    ``istio.io/dataplane-mode=ambient``) is sandwiched: ztunnel does the
    HBONE, with a PROXY header when the inbound binding asks for one.
    Ingress and east-west gateways are not configured here.
    """
    if _proxy_port(gateway, gateway_class):
        return WaypointMode.PROXY
    if gateway.gateway_class_name == WAYPOINT_CLASS:
        return WaypointMode.HBONE
    if gateway.labels.get(wellknown.DATAPLANE_MODE) == "ambient":
        return WaypointMode.SANDWICH
    if any(
        listener.protocol == "HBONE" and listener.port == 15008 for listener in gateway.listeners
    ):
        return WaypointMode.HBONE
    return None


def _proxy_port(gateway: Gateway, gateway_class: GatewayClass | None) -> int:
    """The port of a PROXY inbound binding (annotation, else the istio.io/PROXY listener)."""
    value = gateway.annotations.get(wellknown.WAYPOINT_INBOUND_BINDING)
    if value is None and gateway_class is not None:
        value = gateway_class.annotations.get(wellknown.WAYPOINT_INBOUND_BINDING)
    binding = parse_inbound_binding(value) if value is not None else None
    if binding is None or binding.protocol is not TunnelProtocol.PROXY:
        return 0
    if binding.port:
        return binding.port
    for listener in gateway.listeners:
        if listener.protocol == PROXY_LISTENER_PROTOCOL:
            return listener.port
    return 0


def identity_of(mesh: Mesh, gateway: Gateway) -> WaypointIdentity | None:
    gateway_class = mesh.get(GatewayClass, "", gateway.gateway_class_name)
    mode = waypoint_mode(gateway, gateway_class)
    if mode is None:
        return None
    config = mesh.config
    listeners = (
        tuple(
            GatewayListener(listener.name, listener.port, listener.hostname)
            for listener in gateway.listeners
            if listener.protocol in _HTTP_LISTENER_PROTOCOLS
        )
        if mode is WaypointMode.SANDWICH
        else ()
    )
    return WaypointIdentity(
        namespace=gateway.namespace,
        name=gateway.name,
        mode=mode,
        gateway_class=gateway.gateway_class_name,
        trust_domain=config.trust_domain,
        domain_suffix=config.domain_suffix,
        root_namespace=config.root_namespace,
        proxy_port=_proxy_port(gateway, gateway_class) if mode is WaypointMode.PROXY else 0,
        listeners=listeners,
    )


def collect(mesh: Mesh, bindings: WaypointBindings, gateway: Gateway) -> WaypointInputs | None:
    """Everything ``gateway``'s configuration is built from; ``None`` if it is no waypoint."""
    identity = identity_of(mesh, gateway)
    if identity is None:
        return None
    return _Collector(mesh, bindings, identity).inputs()


def refresh_endpoints(
    mesh: Mesh,
    bindings: WaypointBindings,
    previous: WaypointInputs,
    pods: Mapping[str, Sequence[Pod]],
) -> WaypointInputs:
    """``previous`` brought up to date after a change to nothing but ``pods`` (by
    namespace: each changed pod as it is now and as it was).

    Under pod churn this is most of the waypoint translator's work, so it reads only
    what pods can change: the bound workloads, and the endpoints of the services that
    select one of ``pods`` (before or after). Everything else is ``previous``'s, the
    same objects, so comparing the result with ``previous`` is cheap too. It equals
    what ``collect`` would return (``tests/translate/waypoint/test_incremental.py``).
    """
    return _Collector(mesh, bindings, previous.config.identity).refreshed(previous, pods)


def slice_pod_namespaces(mesh: Mesh, services: Iterable[ServiceInfo]) -> set[str]:
    """Namespaces of the pods named by the EndpointSlices of selector-less Services
    (a pod there decides whether its endpoint is reached through the tunnel)."""
    found = set()
    for info in services:
        if info.kind != "Service":
            continue
        service = mesh.get(Service, info.namespace, info.name)
        if service is None or service.selector:
            continue
        for endpoint_slice in mesh.objects(EndpointSlice, service.namespace):
            if endpoint_slice.service_name != service.name:
                continue
            for endpoint in endpoint_slice.endpoints:
                ref = endpoint.target_ref
                if ref is not None and ref.kind == "Pod":
                    found.add(ref.namespace or service.namespace)
    return found


def _selects_any(obj: Service | ServiceEntry, pods: Mapping[str, Sequence[Pod]]) -> bool:
    """Whether ``obj``'s endpoints may depend on one of ``pods`` (by namespace; see
    ``_Collector.endpoints``)."""
    if isinstance(obj, Service):
        if not obj.selector:
            # Endpoints from EndpointSlices, whose pods may live in another namespace
            # and decide the tunnel: read them again whenever a pod changed.
            return bool(pods)
        selector: Mapping[str, str] | None = obj.selector
    else:
        selector = obj.workload_selector
    return selector is not None and any(
        is_subset(selector, pod.labels) for pod in pods.get(obj.namespace, ())
    )


class _Collector:
    def __init__(self, mesh: Mesh, bindings: WaypointBindings, identity: WaypointIdentity) -> None:
        self.mesh = mesh
        self.bindings = bindings
        self.identity = identity
        self.suffix = identity.domain_suffix
        # A node's locality, asked for once per pod endpoint (10k per build).
        self._localities: dict[str, Locality] = {}

    def inputs(self) -> WaypointInputs:
        identity = self.identity
        bound: list[ServiceInfo] = []
        bound_objects = self.bindings.services_for(identity.namespace, identity.name)
        for obj in bound_objects:
            bound.extend(self.service_infos(obj, bound=True))
        bound_hosts = {service.hostname for service in bound}
        http_routes = self.routes(HTTPRoute, bound)
        grpc_routes = self.routes(GRPCRoute, bound)
        tcp_routes = self.routes(TCPRoute, bound)
        tls_routes = self.routes(TLSRoute, bound)
        gateway_routes: tuple[GatewayRoute, ...] = (
            *http_routes,
            *grpc_routes,
            *tcp_routes,
            *tls_routes,
        )
        virtual_services = self.virtual_services(bound)
        policies = self.policies(bound)
        named = {p.provider for p in policies if p.action is AuthorizationAction.CUSTOM}
        providers = tuple(p for p in self.mesh.config.extension_providers if p.name in named)
        referenced: list[ServiceInfo] = []
        targets = referenced_hosts(gateway_routes, virtual_services, self.suffix)
        targets |= {provider.hostname for provider in providers}
        authentications = self.request_authentications(bound)
        targets |= jwt.jwks_hosts(authentications)
        for host in sorted(targets - bound_hosts):
            referenced.extend(self.lookup_host(host))
        services = (*bound, *referenced)
        config = WaypointConfig(
            identity=identity,
            services=services,
            workloads=self.workloads(),
            http_routes=http_routes,
            grpc_routes=grpc_routes,
            tcp_routes=tcp_routes,
            tls_routes=tls_routes,
            virtual_services=virtual_services,
            destination_rules=self.destination_rules(services),
            policies=policies,
            reference_grants=self.reference_grants(gateway_routes),
            extension_providers=providers,
            request_authentications=authentications,
            access_logs=self.access_logs(),
            trace_sampling=self.trace_sampling(),
        )
        endpoints = {}
        for service, obj in self._service_objects(services):
            for port in service.ports:
                endpoints[(service.hostname, port.port)] = tuple(self.endpoints(obj, service, port))
        return WaypointInputs(config=config, endpoints=FrozenMap(endpoints))

    def refreshed(
        self, previous: WaypointInputs, pods: Mapping[str, Sequence[Pod]]
    ) -> WaypointInputs:
        config = previous.config
        workloads = self.workloads()
        if workloads != config.workloads:
            config = dataclasses.replace(config, workloads=workloads)
        endpoints = dict(previous.endpoints.items())
        for service, obj in self._service_objects(config.services):
            if _selects_any(obj, pods):
                for port in service.ports:
                    endpoints[(service.hostname, port.port)] = tuple(
                        self.endpoints(obj, service, port)
                    )
        return WaypointInputs(config=config, endpoints=FrozenMap(endpoints))

    def reference_grants(self, routes: Iterable[GatewayRoute]) -> tuple[ReferenceGrant, ...]:
        """The grants of the namespaces that routes send traffic to from another one."""
        namespaces = {
            ref.namespace
            for route in routes
            for ref in _backend_refs(route)
            if ref.namespace != route.namespace
        }
        return tuple(
            grant
            for namespace in sorted(namespaces)
            for grant in sorted(
                self.mesh.objects(ReferenceGrant, namespace), key=lambda grant: grant.name
            )
        )

    # --- services ---------------------------------------------------------------

    def service_infos(self, obj: Service | ServiceEntry, *, bound: bool) -> list[ServiceInfo]:
        if isinstance(obj, Service):
            return [
                ServiceInfo(
                    hostname=f"{obj.name}.{obj.namespace}.svc.{self.suffix}",
                    name=obj.name,
                    namespace=obj.namespace,
                    kind="Service",
                    vips=tuple(str(ip) for ip in obj.cluster_ips),
                    ports=tuple(
                        ServicePortInfo(
                            port.port,
                            ports.service_port_protocol(port),
                            port.name,
                            port.target_port,
                        )
                        for port in obj.ports
                    ),
                    bound=bound,
                )
            ]
        infos = []
        dns = obj.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN)
        entry_ports = tuple(
            ServicePortInfo(
                port.number,
                ports.from_name(port.protocol),
                port.name,
                port.target_port or port.number,
            )
            for port in obj.ports
        )
        for host in obj.hosts:
            vips = [
                str(network) if network.num_addresses > 1 else str(network.network_address)
                for network in obj.addresses
            ]
            if not vips:
                vips = [
                    allocated.value for allocated in obj.status_addresses if allocated.host == host
                ]
            infos.append(
                ServiceInfo(
                    hostname=host,
                    name=obj.name,
                    namespace=obj.namespace,
                    kind="ServiceEntry",
                    vips=tuple(vips),
                    ports=entry_ports,
                    bound=bound,
                    dns=dns,
                    dns_endpoints=self._dns_endpoints(obj, host) if dns else (),
                )
            )
        return infos

    def _dns_endpoints(self, entry: ServiceEntry, host: str) -> tuple[Endpoint, ...]:
        """Hostnames Envoy resolves: the entry's endpoints, else the host itself.

        ``port`` 0 means "the cluster's target port" (one list serves all ports).
        """
        addresses = [endpoint.address for endpoint in entry.endpoints if endpoint.address] or [host]
        return tuple(Endpoint(address, 0, tunnel=False) for address in addresses)

    def lookup_host(self, host: str) -> list[ServiceInfo]:
        """A route target that is not bound to this waypoint, if the mesh knows it."""
        name, _, rest = host.partition(".")
        namespace, _, tail = rest.partition(".")
        if tail == f"svc.{self.suffix}":
            service = self.mesh.get(Service, namespace, name)
            if service is not None:
                return self.service_infos(service, bound=False)
        for entry in self.mesh.objects(ServiceEntry):
            if host in entry.hosts:
                return [
                    info for info in self.service_infos(entry, bound=False) if info.hostname == host
                ]
        return []

    def _service_objects(
        self, services: Iterable[ServiceInfo]
    ) -> Iterator[tuple[ServiceInfo, Service | ServiceEntry]]:
        for service in services:
            if service.dns:
                continue
            obj: Service | ServiceEntry | None
            if service.kind == "Service":
                obj = self.mesh.get(Service, service.namespace, service.name)
            else:
                obj = self.mesh.get(ServiceEntry, service.namespace, service.name)
            if obj is not None:
                yield service, obj

    # --- workloads ----------------------------------------------------------------

    def workloads(self) -> tuple[BoundWorkload, ...]:
        out = []
        for obj in self.bindings.workloads_for(self.identity.namespace, self.identity.name):
            if isinstance(obj, Pod):
                addresses = tuple(str(ip) for ip in obj.pod_ips)
            else:
                ip = parse_ip(obj.address)
                addresses = (str(ip),) if ip is not None else ()
            if addresses:
                out.append(BoundWorkload(obj.name, obj.namespace, addresses))
        return tuple(out)

    # --- endpoints ----------------------------------------------------------------

    def endpoints(
        self, obj: Service | ServiceEntry, service: ServiceInfo, port: ServicePortInfo
    ) -> Iterator[Endpoint]:
        if isinstance(obj, Service):
            if obj.selector:
                for pod in self.mesh.pods_with_labels(obj.namespace, obj.selector):
                    yield from self._pod_endpoints(pod, port, obj.publish_not_ready_addresses)
            else:
                yield from self._slice_endpoints(obj, port)
            return
        yield from self._entry_endpoints(obj, port)

    def _pod_endpoints(
        self, pod: Pod, port: ServicePortInfo, not_ready_too: bool
    ) -> Iterator[Endpoint]:
        if pod.terminating or not pod.pod_ips or (not pod.ready and not not_ready_too):
            return
        if isinstance(port.target_port, str):
            container = pod.container_port_named(port.target_port)
            if container is None:
                return
            target = container.port
        else:
            target = port.target_port or port.port
        namespace = self.mesh.namespace(pod.namespace)
        tunnel, _ = pod_tunnel(pod, namespace.labels if namespace is not None else {})
        workload = pod_workload_name(pod)
        # Only the first address of a dual-stack pod carries HBONE (envoy#36318).
        yield Endpoint(
            address=str(pod.pod_ips[0]),
            port=target,
            tunnel=tunnel == wl.HBONE,
            health=Health.HEALTHY if pod.ready else Health.UNHEALTHY,
            labels=pod.labels,
            locality=self._locality(pod.node_name),
            workload=(
                f"{workload};{pod.namespace};{canonical_name(pod.labels, workload)};"
                f"{canonical_revision(pod.labels)};{self.mesh.config.cluster_id}"
            ),
        )

    def _locality(self, node_name: str) -> Locality:
        locality = self._localities.get(node_name)
        if locality is None:
            node = self.mesh.get(Node, "", node_name) if node_name else None
            locality = self._localities[node_name] = (
                Locality()
                if node is None
                else Locality(
                    node.labels.get(wellknown.REGION, ""),
                    node.labels.get(wellknown.ZONE, ""),
                    node.labels.get(wellknown.SUBZONE, ""),
                )
            )
        return locality

    def _slice_endpoints(self, service: Service, port: ServicePortInfo) -> Iterator[Endpoint]:
        for endpoint_slice in self.mesh.objects(EndpointSlice, service.namespace):
            if endpoint_slice.service_name != service.name:
                continue
            number = _slice_port(endpoint_slice, port)
            if number is None:
                continue
            for endpoint in endpoint_slice.endpoints:
                if endpoint.ready is False:
                    continue
                tunnel = False
                ref = endpoint.target_ref
                if ref is not None and ref.kind == "Pod":
                    pod = self.mesh.get(Pod, ref.namespace or service.namespace, ref.name)
                    if pod is not None:
                        namespace = self.mesh.namespace(pod.namespace)
                        labels = namespace.labels if namespace is not None else {}
                        tunnel = pod_tunnel(pod, labels)[0] == wl.HBONE
                for address in endpoint.addresses[:1]:
                    if parse_ip(address) is not None:
                        yield Endpoint(address, number, tunnel=tunnel)

    def _entry_endpoints(self, entry: ServiceEntry, port: ServicePortInfo) -> Iterator[Endpoint]:
        target = (
            port.target_port
            if isinstance(port.target_port, int) and port.target_port
            else port.port
        )
        for endpoint in entry.endpoints:
            if parse_ip(endpoint.address) is None:
                continue
            yield Endpoint(
                endpoint.address,
                endpoint.ports.get(port.name, target),
                tunnel=supports_http_tunnel(endpoint.labels),
                labels=endpoint.labels,
                weight=endpoint.weight or 1,
            )
        if entry.workload_selector is None:
            return
        for pod in self.mesh.pods_with_labels(entry.namespace, entry.workload_selector):
            yield from self._pod_endpoints(
                pod, ServicePortInfo(port.port, port.protocol, port.name, target), False
            )
        for workload_entry in self.mesh.objects(WorkloadEntry, entry.namespace):
            labels = workload_entry.workload_labels
            if not all(labels.get(k) == v for k, v in entry.workload_selector.items()):
                continue
            if parse_ip(workload_entry.address) is None:
                continue
            protocol, _ = declared_tunnel(labels, workload_entry.annotations)
            name = workload_entry_workload_name(
                workload_entry.name, labels, workload_entry.annotations
            )
            yield Endpoint(
                workload_entry.address,
                workload_entry.ports.get(port.name, target),
                tunnel=protocol == wl.HBONE,
                labels=labels,
                weight=workload_entry.weight or 1,
                workload=(
                    f"{name};{workload_entry.namespace};{canonical_name(labels, name)};"
                    f"{canonical_revision(labels)};{self.mesh.config.cluster_id}"
                ),
            )

    # --- routing config -----------------------------------------------------------

    def routes(self, cls: type[AnyRoute], bound: list[ServiceInfo]) -> tuple[AnyRoute, ...]:
        """Routes attached to a bound service (or, sandwiched, to the Gateway itself)."""
        identity = self.identity
        namespaces = {identity.namespace, *(service.namespace for service in bound)}
        found: list[AnyRoute] = []
        for namespace in sorted(namespaces):
            for route in self.mesh.objects(cls, namespace):
                if any(
                    attaches(parent, service, None)
                    for parent in route.parent_refs
                    for service in bound
                ) or (
                    identity.mode is WaypointMode.SANDWICH
                    and any(
                        parent.group == GATEWAY_GROUP
                        and parent.kind == "Gateway"
                        and parent.name == identity.name
                        and parent.namespace == identity.namespace
                        for parent in route.parent_refs
                    )
                ):
                    found.append(route)
        return tuple(sorted(found, key=_age))

    def virtual_services(self, bound: list[ServiceInfo]) -> tuple[VirtualService, ...]:
        namespaces = {self.identity.namespace, *(service.namespace for service in bound)}
        found = []
        for namespace in sorted(namespaces):
            for vs in self.mesh.objects(VirtualService, namespace):
                if not virtual_service.is_mesh_bound(vs):
                    continue
                hosts = [
                    virtual_service.qualify(host, vs.namespace, self.suffix) for host in vs.hosts
                ]
                if any(
                    virtual_service.host_matches(host, service.hostname)
                    for host in hosts
                    for service in bound
                ):
                    found.append(vs)
        return tuple(sorted(found, key=_age))

    def destination_rules(self, services: Iterable[ServiceInfo]) -> FrozenMap[str, DestinationRule]:
        """The DestinationRule of each service: its own namespace first, then the
        waypoint's, then the root namespace; exact hosts before wildcards, oldest first."""
        found: dict[str, DestinationRule] = {}
        for service in services:
            for namespace in dict.fromkeys(
                (service.namespace, self.identity.namespace, self.identity.root_namespace)
            ):
                rules = sorted(self.mesh.objects(DestinationRule, namespace), key=_age)
                exact = [
                    rule
                    for rule in rules
                    if virtual_service.qualify(rule.host, rule.namespace, self.suffix)
                    == service.hostname
                ]
                wildcard = [
                    rule
                    for rule in rules
                    if virtual_service.host_matches(
                        virtual_service.qualify(rule.host, rule.namespace, self.suffix),
                        service.hostname,
                    )
                ]
                chosen = (exact or wildcard)[:1]
                if chosen:
                    found[service.hostname] = chosen[0]
                    break
        return FrozenMap(found)

    def policies(self, bound: list[ServiceInfo]) -> tuple[AuthorizationPolicy, ...]:
        return self._targeting(AuthorizationPolicy, bound)

    def _telemetry(self, has: Callable[[Telemetry], bool]) -> Telemetry | None:
        """Istio's Telemetry precedence among those that ``has`` the setting: one naming
        this waypoint, else its namespace's, else the root namespace's (the oldest at a
        level). Selector Telemetries are for workloads."""
        identity = self.identity
        ranked = []
        for namespace in {identity.namespace, identity.root_namespace}:
            for telemetry in self.mesh.objects(Telemetry, namespace):
                if telemetry.selector is not None or not has(telemetry):
                    continue
                if telemetry.target_refs:
                    if not targets_waypoint(telemetry, identity):
                        continue
                    rank = 0
                else:
                    rank = 1 if namespace == identity.namespace else 2
                ranked.append(((rank, *_age(telemetry)), telemetry))
        return min(ranked, key=lambda item: item[0])[1] if ranked else None

    def trace_sampling(self) -> float | None:
        """The percentage of requests sampled for tracing, if a Telemetry sets one."""
        chosen = self._telemetry(
            lambda t: any(e.random_sampling_percentage is not None for e in t.tracing)
        )
        if chosen is None:
            return None
        return next(
            e.random_sampling_percentage
            for e in chosen.tracing
            if e.random_sampling_percentage is not None
        )

    def access_logs(self) -> tuple[FileAccessLogProvider, ...]:
        """The Telemetry's providers (see ``_telemetry``); without any, the mesh
        config's ``accessLogFile``."""
        config = self.mesh.config
        chosen = self._telemetry(lambda telemetry: bool(telemetry.access_logging))
        if chosen is None:
            if not config.access_log_file:
                return ()
            return (
                FileAccessLogProvider("mesh", config.access_log_file, config.access_log_format),
            )
        found: list[FileAccessLogProvider] = []
        for entry in chosen.access_logging:
            if entry.disabled or entry.mode is AccessLogMode.CLIENT:
                continue  # a waypoint is the server side of the requests it logs
            for name in entry.providers or (DEFAULT_ACCESS_LOG.name,):
                provider = config.access_log_provider(name)
                if provider is not None and provider not in found:
                    found.append(provider)
        return tuple(found)

    def request_authentications(
        self, bound: list[ServiceInfo]
    ) -> tuple[RequestAuthentication, ...]:
        return self._targeting(RequestAuthentication, bound)

    def _targeting(self, cls: type[AnyPolicy], bound: list[ServiceInfo]) -> tuple[AnyPolicy, ...]:
        """Policies whose targetRefs name this waypoint, its class or a bound service."""
        identity = self.identity
        namespaces = {
            identity.namespace,
            identity.root_namespace,
            *(service.namespace for service in bound),
        }
        found = []
        for namespace in sorted(namespaces):
            for policy in self.mesh.objects(cls, namespace):
                if policy.selector is not None:
                    continue  # waypoints only take targetRefs policies
                if targets_waypoint(policy, identity) or any(
                    targets_service(policy, service) for service in bound
                ):
                    found.append(policy)
        return tuple(sorted(found, key=lambda policy: (policy.namespace, policy.name)))


def _age(obj: KubeObject) -> tuple[datetime, str, str]:
    created = obj.meta.creation_timestamp
    return (
        created.replace(tzinfo=None) if created is not None else _EPOCH,
        obj.namespace,
        obj.name,
    )


def _slice_port(endpoint_slice: EndpointSlice, port: ServicePortInfo) -> int | None:
    for slice_port in endpoint_slice.ports:
        if slice_port.port is not None and (slice_port.name or "") == port.name:
            return slice_port.port
    return None


def _backend_refs(route: GatewayRoute) -> Iterator[BackendRef]:
    """Where a route sends (or mirrors) traffic."""
    rules: Sequence[HTTPRouteRule | GRPCRouteRule | L4RouteRule] = route.rules
    for rule in rules:
        yield from rule.backend_refs
        if not isinstance(rule, L4RouteRule):
            yield from (
                item.backend_ref for item in rule.filters if isinstance(item, RequestMirror)
            )


def referenced_hosts(
    routes: Iterable[GatewayRoute],
    virtual_services: Iterable[VirtualService],
    suffix: str,
) -> set[str]:
    """Hostnames that routes send (or mirror) traffic to."""
    hosts: set[str] = set()
    for route in routes:
        for ref in _backend_refs(route):
            if ref.kind == "Service" and ref.group == "":
                hosts.add(f"{ref.name}.{ref.namespace}.svc.{suffix}")
            elif ref.kind == "Hostname":
                hosts.add(ref.name)
    for vs in virtual_services:
        for http in vs.http:
            targets = [route.destination for route in http.route]
            if http.mirror is not None:
                targets.append(http.mirror)
            for target in targets:
                hosts.add(virtual_service.qualify(target.host, vs.namespace, suffix))
    return hosts
