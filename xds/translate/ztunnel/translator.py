"""``ZtunnelTranslator``: the mesh → every ztunnel's Address and Authorization resources.

All ztunnels share one scope (``ZTUNNEL_SCOPE``): istiod sends every Workload,
Service and policy to every ztunnel (wildcard subscription), so this
translator produces the mesh-wide set once.

Incremental by source object. The translator remembers, per source object
(Pod, WorkloadEntry, ServiceEntry, EndpointSlice), the serialized Workloads it
produced, and per Service hostname and policy the serialized resources. A
change set is turned into the set of source objects whose output may differ:

* a Pod, WorkloadEntry, ServiceEntry or EndpointSlice: itself;
* a Service or ServiceEntry: its Services, then — only when a hostname's
  winning entry changed in a way endpoints see (selector, ports, port names) —
  the workloads it selects before and after, and its slice-backed pods;
* a Namespace: everything in it (labels carry waypoints, enrollment, traffic
  distribution); the root namespace's network label changes the Context and
  rebuilds everything;
* a Gateway, GatewayClass or waypoint instance pod: the waypoints it
  defines; if one changed, every Service and every workload asking for it;
* an AuthorizationPolicy: its Authorization and the workloads its old and new
  selectors select; a PeerAuthentication (rare): all PA-derived policies and
  every workload of its namespace (of the mesh, for the root namespace);
* a Node: the pods on it (locality).

Every rebuilt resource is serialized once and compared by content hash with
what was last produced; identical bytes produce no upsert, so a change that
does not alter the wire form reaches no ztunnel.

Why not the waypoint translator's collect-and-compare (gather each output's
frozen inputs, rebuild where they differ)? A waypoint scope holds tens of
resources built from a handful of objects, so collecting every input on each
change is cheap. This scope holds every Workload and Service of the mesh (11k
resources for 10k pods): collecting the inputs of all of them is itself O(mesh)
per change, which is the cost the ingestion budget (one pod change reaching
1,000 ztunnels in milliseconds of CPU) cannot pay. The invalidation rules above
are the price; ``tests/translate/ztunnel/test_incremental.py`` checks after
every change that the incremental output equals a full rebuild.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xds import type_urls
from xds.model.core import EndpointSlice, Namespace, Node, Pod, Service
from xds.model.frozen import EMPTY_LABELS, Labels, is_subset
from xds.model.gateway import Gateway, GatewayClass
from xds.model.mesh import ChangeSet, Mesh
from xds.model.meta import KubeObject, ObjectKey
from xds.model.networking import ServiceEntry, WorkloadEntry
from xds.model.security import AuthorizationPolicy, PeerAuthentication
from xds.proto.istio.workload import workload_pb2 as wl
from xds.resources import ZTUNNEL_SCOPE, Resource, Update, node_group
from xds.translate.binding import (
    Waypoint,
    all_waypoints,
    requested_waypoint,
    waypoint_for_gateway,
    waypoint_key_of_instance,
)
from xds.translate.ztunnel.addresses import service_aliases
from xds.translate.ztunnel.authorization import convert_authorization_policy
from xds.translate.ztunnel.context import Context
from xds.translate.ztunnel.index import ServiceIndex, SliceIndex
from xds.translate.ztunnel.peer_authentication import (
    convert_peer_authentication,
    is_namespace_wide,
    oldest,
    static_strict_policy,
)
from xds.translate.ztunnel.policies import PolicyIndex, label_items
from xds.translate.ztunnel.services import (
    ServiceInfo,
    final_message,
    kube_service_info,
    service_entry_infos,
)
from xds.translate.ztunnel.workloads import (
    AddressEntry,
    endpoint_slice_workloads,
    pod_workload,
    service_entry_workloads,
    workload_entry_workload,
)

ADDRESS = type_urls.ADDRESS
AUTHORIZATION = type_urls.AUTHORIZATION

_WORKLOAD_SOURCES = (Pod.kind, WorkloadEntry.kind, ServiceEntry.kind, EndpointSlice.kind)


class ZtunnelTranslator:
    """Implements ``xds.translate.base.Translator`` for the ztunnel scope.

    Needs nothing but the mesh: cluster id, trust domain, domain suffix and
    root namespace come from ``mesh.config`` (``MeshConfig``), the network
    from the root namespace's ``topology.istio.io/network`` label. Holds its
    memo between calls; ``changes=None`` rebuilds from scratch.
    """

    def __init__(self) -> None:
        self._state: _State | None = None

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        context = Context.of(mesh)
        state, self._state = self._state, None  # a failure below leaves no half-updated memo
        if changes is None or state is None or state.context != context:
            state = _State(context)
            updates = state.build(mesh)
        else:
            updates = state.apply(mesh, changes)
        self._state = state
        return updates


@dataclass
class _Output:
    """Upserts and removals collected during one translation, per type."""

    upserts: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    removals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def updates(self, replace: bool) -> list[Update]:
        result = []
        for type_url in (ADDRESS, AUTHORIZATION):
            upserts, removals = self.upserts.get(type_url, []), self.removals.get(type_url, [])
            if replace or upserts or removals:
                result.append(
                    Update(
                        ZTUNNEL_SCOPE,
                        type_url,
                        upserts=upserts,
                        removals=sorted(removals),
                        replace=replace,
                    )
                )
        return result


def _same(old: Resource | None, new: Resource) -> bool:
    return old is not None and old.version == new.version and old.aliases == new.aliases


def _address_resource(entry: AddressEntry) -> Resource:
    return Resource.from_message(
        ADDRESS,
        entry.name,
        entry.message,
        aliases=entry.aliases,
        groups=address_groups(entry.message),
    )


def address_groups(address: wl.Address) -> tuple[str, ...]:
    """What a workload is implied by for an on-demand ztunnel: its node (a ztunnel always
    gets the workloads of its own node) and each of its services (looking a Service up
    brings its workloads). Services are in no group."""
    if address.WhichOneof("type") != "workload":
        return ()
    workload = address.workload
    groups = [node_group(workload.node)] if workload.node else []
    return (*groups, *sorted(workload.services))


class _Step:
    """The working set of one incremental translation."""

    def __init__(self, mesh: Mesh, changes: ChangeSet) -> None:
        self.mesh = mesh
        self.changes = changes
        self.by_kind: dict[str, list[ObjectKey]] = defaultdict(list)
        for key in changes.keys:
            self.by_kind[key.kind].append(key)
        self.namespaces = _NamespaceCache(mesh)
        self.out = _Output()
        self.dirty: set[ObjectKey] = set()
        """Workload sources (Pod, WorkloadEntry, ServiceEntry, EndpointSlice) to rebuild."""
        self.dirty_services: set[ObjectKey] = set()
        """Services and ServiceEntries whose ServiceInfos to rebuild."""


class _State:
    """Everything remembered between two translations."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.waypoints: dict[str, Waypoint] = {}
        self.services = ServiceIndex()
        self.slices = SliceIndex()
        self.policies = PolicyIndex(context.root_namespace)
        self.workloads: dict[ObjectKey, dict[str, Resource]] = {}
        self.service_resources: dict[str, dict[str, Resource]] = {}  # hostname -> name -> res
        self.authorizations: dict[str, Resource] = {}
        self.peer_authentication_names: set[str] = set()

    # --- full build ---------------------------------------------------------------

    def build(self, mesh: Mesh) -> list[Update]:
        out = _Output()
        self.waypoints = all_waypoints(mesh, self.context.network)
        namespaces = _NamespaceCache(mesh)
        hostnames: set[str] = set()
        for service in mesh.objects(Service):
            hostnames |= self._refresh_service(service.key, service, namespaces)
        for entry in mesh.objects(ServiceEntry):
            hostnames |= self._refresh_service(entry.key, entry, namespaces)
        self.services.reselect(hostnames)
        self._emit_services(hostnames, out)

        for namespace in {p.namespace for p in mesh.objects(AuthorizationPolicy)}:
            self.policies.set_authorization_policies(
                namespace, mesh.objects(AuthorizationPolicy, namespace)
            )
        for namespace in {p.namespace for p in mesh.objects(PeerAuthentication)}:
            self.policies.set_peer_authentications(
                namespace, mesh.objects(PeerAuthentication, namespace)
            )
        for policy in mesh.objects(AuthorizationPolicy):
            self._emit_authorization_policy(policy.key, policy, out)
        self._emit_peer_authentication_policies(out)

        for endpoint_slice in mesh.objects(EndpointSlice):
            self.slices.update(endpoint_slice.key, None, endpoint_slice)
        selected = self._pods_by_selecting_service(mesh)
        sources: list[KubeObject] = [
            *mesh.objects(Pod),
            *mesh.objects(WorkloadEntry),
            *mesh.objects(ServiceEntry),
            *mesh.objects(EndpointSlice),
        ]
        for source in sources:
            entries = self._workload_entries(mesh, source, namespaces, selected)
            self._replace_workloads(source.key, entries, out)
        return out.updates(replace=True)

    def _pods_by_selecting_service(self, mesh: Mesh) -> dict[ObjectKey, list[ServiceInfo]]:
        """Pod -> selecting Services, computed from the Services' side (one indexed
        lookup per Service instead of one scan of the namespace's Services per pod)."""
        result: dict[ObjectKey, list[ServiceInfo]] = defaultdict(list)
        for namespace in {pod.namespace for pod in mesh.objects(Pod)}:
            for info in self.services.winners_in(namespace).values():
                if info.selector:
                    for pod in mesh.pods_with_labels(namespace, info.selector):
                        result[pod.key].append(info)
        return result

    # --- incremental --------------------------------------------------------------

    def apply(self, mesh: Mesh, changes: ChangeSet) -> list[Update]:
        """Rebuild what ``changes`` may affect. Order matters: waypoints feed Services,
        Services and policies feed Workloads, which are rebuilt last."""
        if not changes:
            return []
        step = _Step(mesh, changes)
        self._invalidate_namespaces(step)
        self._apply_waypoints(step)
        self._apply_services(step)
        self._apply_authorization_policies(step)
        self._apply_peer_authentications(step)
        self._apply_nodes_and_slices(step)
        for kind in _WORKLOAD_SOURCES:
            step.dirty.update(step.by_kind[kind])
        for key in sorted(step.dirty):
            source = mesh.get_by_key(key)
            entries = (
                [] if source is None else self._workload_entries(mesh, source, step.namespaces)
            )
            self._replace_workloads(key, entries, step.out)
        return step.out.updates(replace=False)

    def _invalidate_namespaces(self, step: _Step) -> None:
        """Namespace labels and annotations reach every object in the namespace."""
        mesh = step.mesh
        for key in step.by_kind[Namespace.kind]:
            step.dirty.update(self._workloads_in(mesh, key.name, everywhere=False))
            step.dirty_services.update(obj.key for obj in mesh.objects(Service, key.name))
            step.dirty_services.update(obj.key for obj in mesh.objects(ServiceEntry, key.name))

    def _apply_waypoints(self, step: _Step) -> None:
        changed = self._refresh_waypoints(step.mesh, step.by_kind, step.changes.previous)
        if changed:
            # Rare: re-resolve every Service (cheap, and canary labels may name the
            # waypoint too) and every workload that asks for a changed waypoint.
            step.dirty_services.update(s.key for s in step.mesh.objects(Service))
            step.dirty_services.update(s.key for s in step.mesh.objects(ServiceEntry))
            step.dirty.update(self._bound_to(step.mesh, changed, step.namespaces))

    def _apply_services(self, step: _Step) -> None:
        step.dirty_services.update(step.by_kind[Service.kind])
        step.dirty_services.update(step.by_kind[ServiceEntry.kind])
        hostnames: set[str] = set()
        for key in step.dirty_services:
            hostnames |= self._refresh_service(key, step.mesh.get_by_key(key), step.namespaces)
        for change in self.services.reselect(hostnames):
            if change.affects_endpoints:
                for info in (change.old, change.new):
                    if info is not None:
                        step.dirty.update(self._endpoints_of(step.mesh, info))
        self._emit_services(hostnames, step.out)

    def _apply_authorization_policies(self, step: _Step) -> None:
        mesh = step.mesh
        for key in step.by_kind[AuthorizationPolicy.kind]:
            policy = mesh.get(AuthorizationPolicy, key.namespace, key.name)
            self.policies.set_authorization_policies(
                key.namespace, mesh.objects(AuthorizationPolicy, key.namespace)
            )
            self._emit_authorization_policy(key, policy, step.out)
            for version in (step.changes.previous.get(key), policy):
                if isinstance(version, AuthorizationPolicy) and version.selector:
                    step.dirty.update(
                        self._selected_by_policy(mesh, key.namespace, version.selector)
                    )

    def _apply_peer_authentications(self, step: _Step) -> None:
        """Rare: rebuild every PA-derived policy and every workload of the namespace."""
        namespaces = {key.namespace for key in step.by_kind[PeerAuthentication.kind]}
        for namespace in namespaces:
            self.policies.set_peer_authentications(
                namespace, step.mesh.objects(PeerAuthentication, namespace)
            )
            step.dirty.update(
                self._workloads_in(
                    step.mesh, namespace, everywhere=namespace == self.context.root_namespace
                )
            )
        if namespaces:
            self._emit_peer_authentication_policies(step.out)

    def _apply_nodes_and_slices(self, step: _Step) -> None:
        node_names = {key.name for key in step.by_kind[Node.kind]}
        if node_names:
            step.dirty.update(
                pod.key for pod in step.mesh.objects(Pod) if pod.node_name in node_names
            )
        for key in step.by_kind[EndpointSlice.kind]:
            old, new = step.changes.previous.get(key), step.mesh.get_by_key(key)
            pods = self.slices.update(
                key,
                old if isinstance(old, EndpointSlice) else None,
                new if isinstance(new, EndpointSlice) else None,
            )
            step.dirty.update(ObjectKey(Pod.kind, namespace, name) for namespace, name in pods)

    # --- waypoints --------------------------------------------------------------------

    def _refresh_waypoints(
        self,
        mesh: Mesh,
        by_kind: Mapping[str, list[ObjectKey]],
        previous: Mapping[ObjectKey, KubeObject],
    ) -> set[str]:
        """Recompute the waypoints of changed Gateways (and of Gateways whose class or
        instance pods changed); returns the keys whose Waypoint changed."""
        gateways = {(key.namespace, key.name) for key in by_kind.get(Gateway.kind, ())}
        classes = {key.name for key in by_kind.get(GatewayClass.kind, ())}
        if classes:
            gateways.update(
                (g.namespace, g.name)
                for g in mesh.objects(Gateway)
                if g.gateway_class_name in classes
            )
        for key in by_kind.get(Pod.kind, ()):
            for version in (previous.get(key), mesh.get_by_key(key)):
                if version is not None:
                    instance = waypoint_key_of_instance(key.namespace, version.labels)
                    if instance is not None:
                        gateways.add((key.namespace, instance.split("/", 1)[1]))
        changed = set()
        for namespace, name in gateways:
            waypoint_key = f"{namespace}/{name}"
            gateway = mesh.get(Gateway, namespace, name)
            waypoint = (
                None
                if gateway is None
                else waypoint_for_gateway(mesh, gateway, self.context.network)
            )
            if waypoint != self.waypoints.get(waypoint_key):
                changed.add(waypoint_key)
                if waypoint is None:
                    del self.waypoints[waypoint_key]
                else:
                    self.waypoints[waypoint_key] = waypoint
        return changed

    def _bound_to(
        self, mesh: Mesh, waypoint_keys: set[str], namespaces: _NamespaceCache
    ) -> set[ObjectKey]:
        """Workload sources that ask for, or are instances of, any of ``waypoint_keys``."""
        result: set[ObjectKey] = set()
        workloads: list[Pod | WorkloadEntry] = [*mesh.objects(Pod), *mesh.objects(WorkloadEntry)]
        for workload in workloads:
            labels = (
                workload.workload_labels if isinstance(workload, WorkloadEntry) else workload.labels
            )
            instance = waypoint_key_of_instance(workload.namespace, labels)
            ref = requested_waypoint(
                workload.namespace, labels, namespaces.labels(workload.namespace)
            )
            if instance in waypoint_keys or (ref is not None and ref.key in waypoint_keys):
                result.add(workload.key)
        # ServiceEntry endpoints bind by their own labels; there are few of them.
        result.update(entry.key for entry in mesh.objects(ServiceEntry) if entry.endpoints)
        return result

    # --- services ------------------------------------------------------------------

    def _refresh_service(
        self, key: ObjectKey, obj: KubeObject | None, namespaces: _NamespaceCache
    ) -> set[str]:
        infos: list[ServiceInfo] = []
        if isinstance(obj, Service):
            info = kube_service_info(
                obj, namespaces.get(obj.namespace), self.waypoints, self.context
            )
            infos = [info] if info is not None else []
        elif isinstance(obj, ServiceEntry):
            infos = service_entry_infos(
                obj, namespaces.get(obj.namespace), self.waypoints, self.context
            )
        return self.services.replace(key, infos)

    def _emit_services(self, hostnames: Iterable[str], out: _Output) -> None:
        for hostname in hostnames:
            old = self.service_resources.pop(hostname, {})
            new: dict[str, Resource] = {}
            selection = self.services.selection(hostname)
            if selection is not None:
                for info in selection.winners.values():
                    message = final_message(info, selection)
                    resource = Resource.from_message(
                        ADDRESS,
                        info.key,
                        wl.Address(service=message),
                        aliases=service_aliases(message.addresses),
                    )
                    new[info.key] = resource
                    if not _same(old.get(info.key), resource):
                        out.upserts[ADDRESS].append(resource)
            out.removals[ADDRESS].extend(name for name in old if name not in new)
            if new:
                self.service_resources[hostname] = new

    def _endpoints_of(self, mesh: Mesh, info: ServiceInfo) -> set[ObjectKey]:
        """Workload sources whose ``services`` map lists ``info``."""
        namespace = info.namespace
        result: set[ObjectKey] = set()
        if info.selector:
            result.update(pod.key for pod in mesh.pods_with_labels(namespace, info.selector))
            result.update(
                entry.key
                for entry in mesh.objects(WorkloadEntry, namespace)
                if is_subset(info.selector, entry.workload_labels)
            )
        if info.is_kube:
            for endpoint_slice in mesh.objects(EndpointSlice, namespace):
                if endpoint_slice.service_name == info.source.name:
                    result.add(endpoint_slice.key)
                    result.update(
                        ObjectKey(Pod.kind, e.target_ref.namespace or namespace, e.target_ref.name)
                        for e in endpoint_slice.endpoints
                        if e.target_ref is not None and e.target_ref.kind == Pod.kind
                    )
        else:
            result.add(info.source)  # the ServiceEntry's own endpoints
        return result

    # --- policies ------------------------------------------------------------------

    def _emit_authorization_policy(
        self, key: ObjectKey, policy: AuthorizationPolicy | None, out: _Output
    ) -> None:
        name = f"{key.namespace}/{key.name}"
        message = (
            None
            if policy is None
            else convert_authorization_policy(policy, self.context.root_namespace)
        )
        if message is None:
            if self.authorizations.pop(name, None) is not None:
                out.removals[AUTHORIZATION].append(name)
            return
        self._put_authorization(name, Resource.from_message(AUTHORIZATION, name, message), out)

    def _put_authorization(self, name: str, resource: Resource, out: _Output) -> None:
        if not _same(self.authorizations.get(name), resource):
            self.authorizations[name] = resource
            out.upserts[AUTHORIZATION].append(resource)

    def _emit_peer_authentication_policies(self, out: _Output) -> None:
        """The static STRICT policy and every converted PeerAuthentication, from scratch."""
        root = self.context.root_namespace
        by_namespace = self.policies.peer_authentications
        messages = {}
        if by_namespace:
            static = static_strict_policy(root)
            messages[f"{root}/{static.name}"] = static
        root_policy = oldest(p for p in by_namespace.get(root, ()) if is_namespace_wide(p))
        for namespace, listed in by_namespace.items():
            namespace_policy = oldest(p for p in listed if is_namespace_wide(p))
            for policy in listed:
                converted = convert_peer_authentication(
                    policy,
                    root_namespace=root,
                    namespace_policy=namespace_policy,
                    root_policy=root_policy,
                )
                if converted is not None:
                    messages[f"{namespace}/{converted.name}"] = converted
        for name in sorted(self.peer_authentication_names - messages.keys()):
            del self.authorizations[name]
            out.removals[AUTHORIZATION].append(name)
        for name, message in messages.items():
            self._put_authorization(name, Resource.from_message(AUTHORIZATION, name, message), out)
        self.peer_authentication_names = set(messages)

    def _selected_by_policy(self, mesh: Mesh, namespace: str, selector: Labels) -> set[ObjectKey]:
        """Workload sources a selector policy in ``namespace`` attaches to."""
        everywhere = namespace == self.context.root_namespace
        pods = mesh.objects(Pod) if everywhere else mesh.pods_with_labels(namespace, selector)
        result = {pod.key for pod in pods if is_subset(selector, pod.labels)}
        for entry in mesh.objects(WorkloadEntry, None if everywhere else namespace):
            if is_subset(selector, entry.workload_labels):
                result.add(entry.key)
        for service_entry in mesh.objects(ServiceEntry, None if everywhere else namespace):
            if is_subset(selector, service_entry.labels):
                result.add(service_entry.key)
        return result

    @staticmethod
    def _workloads_in(mesh: Mesh, namespace: str, everywhere: bool) -> set[ObjectKey]:
        """Pods, WorkloadEntries and ServiceEntries of ``namespace`` (of all, if ``everywhere``)."""
        scope = None if everywhere else namespace
        keys = {pod.key for pod in mesh.objects(Pod, scope)}
        keys.update(entry.key for entry in mesh.objects(WorkloadEntry, scope))
        keys.update(entry.key for entry in mesh.objects(ServiceEntry, scope))
        return keys

    # --- workloads ------------------------------------------------------------------

    def _services_for_pod(
        self, mesh: Mesh, pod: Pod, selected: Mapping[ObjectKey, list[ServiceInfo]] | None
    ) -> list[ServiceInfo]:
        if selected is not None:
            services = list(selected.get(pod.key, ()))
        else:
            items = label_items(pod.labels)
            services = [
                info
                for info in self.services.winners_in(pod.namespace).values()
                if info.selects(items)
            ]
        seen = {info.hostname for info in services}
        for slice_key in self.slices.slices_naming(pod.namespace, pod.name):
            info = self._slice_service(mesh, slice_key, pod, seen)
            if info is not None:
                seen.add(info.hostname)
                services.append(info)
        return services

    def _slice_service(
        self, mesh: Mesh, slice_key: ObjectKey, pod: Pod, seen: set[str]
    ) -> ServiceInfo | None:
        """The Kubernetes Service of a slice that names ``pod`` in a targetRef, unless its
        hostname is already attached (by the Service's selector, the usual case).

        A targetRef field left empty (namespace, uid) matches anything, so
        hand-written slices need not repeat the pod's uid.
        """
        endpoint_slice = mesh.get(EndpointSlice, slice_key.namespace, slice_key.name)
        if endpoint_slice is None or endpoint_slice.service_name is None:
            return None
        name = endpoint_slice.service_name
        if self.context.service_hostname(name, endpoint_slice.namespace) in seen:
            return None
        refers = any(
            e.target_ref is not None
            and e.target_ref.kind == Pod.kind
            and e.target_ref.name == pod.name
            and (e.target_ref.namespace or endpoint_slice.namespace) == pod.namespace
            and (not e.target_ref.uid or not pod.meta.uid or e.target_ref.uid == pod.meta.uid)
            for e in endpoint_slice.endpoints
        )
        return self._kube_service(endpoint_slice.namespace, name) if refers else None

    def _kube_service(self, namespace: str, name: str) -> ServiceInfo | None:
        hostname = self.context.service_hostname(name, namespace)
        info = self.services.winners_in(namespace).get(hostname)
        return info if info is not None and info.is_kube else None

    def _workload_entries(
        self,
        mesh: Mesh,
        source: KubeObject,
        namespaces: _NamespaceCache,
        selected: Mapping[ObjectKey, list[ServiceInfo]] | None = None,
    ) -> list[AddressEntry]:
        context = self.context
        namespace = namespaces.get(source.namespace)
        if isinstance(source, Pod):
            entry = pod_workload(
                source,
                namespace=namespace,
                node=mesh.get(Node, "", source.node_name) if source.node_name else None,
                services=self._services_for_pod(mesh, source, selected),
                policies=self.policies.for_workload(source.namespace, source.labels),
                waypoints=self.waypoints,
                context=context,
            )
            return [] if entry is None else [entry]
        if isinstance(source, WorkloadEntry):
            labels = source.workload_labels
            items = label_items(labels)
            services = [
                info
                for info in self.services.winners_in(source.namespace).values()
                if info.selects(items)
            ]
            return [
                workload_entry_workload(
                    source,
                    namespace=namespace,
                    services=services,
                    policies=self.policies.for_workload(source.namespace, labels),
                    waypoints=self.waypoints,
                    context=context,
                )
            ]
        if isinstance(source, ServiceEntry):
            return service_entry_workloads(
                source,
                namespace=namespace,
                services=self.services.surviving(source.key),
                policies=self.policies.for_workload(source.namespace, source.labels),
                waypoints=self.waypoints,
                context=context,
            )
        if isinstance(source, EndpointSlice):
            name = source.service_name
            info = None if name is None else self._kube_service(source.namespace, name)
            return endpoint_slice_workloads(source, info, context)
        return []

    def _replace_workloads(self, key: ObjectKey, entries: list[AddressEntry], out: _Output) -> None:
        old = self.workloads.pop(key, {})
        new: dict[str, Resource] = {}
        for entry in entries:
            previous = old.get(entry.name)
            resource = _address_resource(entry)
            new[entry.name] = resource
            if not _same(previous, resource):
                out.upserts[ADDRESS].append(resource)
        out.removals[ADDRESS].extend(name for name in old if name not in new)
        if new:
            self.workloads[key] = new


if TYPE_CHECKING:
    from xds.translate.base import Translator

    _TRANSLATOR_CONTRACT: Translator = ZtunnelTranslator()


class _NamespaceCache:
    """Namespace lookups memoized for one translation (many objects share a namespace)."""

    def __init__(self, mesh: Mesh) -> None:
        self._mesh = mesh
        self._cache: dict[str, Namespace | None] = {}

    def get(self, name: str) -> Namespace | None:
        if name not in self._cache:
            self._cache[name] = self._mesh.namespace(name)
        return self._cache[name]

    def labels(self, name: str) -> Labels:
        namespace = self.get(name)
        return namespace.labels if namespace is not None else EMPTY_LABELS
