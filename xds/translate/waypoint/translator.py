"""The waypoint translator: per-waypoint LDS, CDS and EDS, scoped to what it serves.

Each waypoint Gateway gets its own scope (``waypoint/<ns>/<name>``) holding
only the listeners, clusters and endpoints for the services and workloads
bound to it. To stay cheap and to avoid touching waypoints a change does not
concern, the translator remembers each waypoint's inputs (plain frozen data)
and rebuilds only when they differ:

* inputs unchanged: no Update at all for that waypoint;
* only endpoints changed (a pod came, went or became ready): the assignments of
  the clusters whose endpoints moved, nothing else;
* only the bound workloads changed as well: the listeners too (workload
  addresses are in the main listener's matcher);
* anything else: LISTENER, CLUSTER and ENDPOINT, each as a complete set
  (``replace=True``). Unchanged resources keep their content hash, so the
  store pushes only what really differs.

A change to nothing but pods does not even collect a waypoint's inputs again:
``refresh_endpoints`` reads the endpoints of the services those pods touch.

No ROUTE: route configs are inline in the listeners, as istiod does for
waypoints. Secrets (``default``/``ROOTCA``) are served by the security layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2

from xds import type_urls
from xds.model import wellknown
from xds.model.core import Pod
from xds.model.gateway import Gateway
from xds.model.mesh import ChangeSet, Mesh
from xds.resources import Resource, Update, waypoint_scope
from xds.translate.binding import WaypointBindings
from xds.translate.waypoint import jwt
from xds.translate.waypoint.clusters import build_clusters
from xds.translate.waypoint.collect import (
    collect,
    referenced_hosts,
    refresh_endpoints,
    slice_pod_namespaces,
)
from xds.translate.waypoint.endpoints import build_endpoints
from xds.translate.waypoint.inputs import WaypointInputs
from xds.translate.waypoint.listeners import build_listeners

# Kinds that can never change what a waypoint is sent.
# Secrets are served as they are over SDS (plane/secrets.py): a DestinationRule names
# one, no snapshot reads its data (a full rebuild here is ~0.25 s on a 10k-pod mesh).
_IRRELEVANT_KINDS = frozenset({"PeerAuthentication", "ServiceAccount", "Secret"})


class WaypointTranslator:
    """Translates the mesh into one LDS/CDS/EDS snapshot per waypoint Gateway."""

    def __init__(self) -> None:
        self._inputs: dict[str, WaypointInputs] = {}
        # Namespaces whose pods each waypoint's inputs depend on.
        self._namespaces: dict[str, frozenset[str]] = {}
        self._bindings: WaypointBindings | None = None

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        if changes is not None and changes.kinds <= _IRRELEVANT_KINDS:
            return []
        if changes is not None and self._bindings is not None and _local_churn(mesh, changes):
            # Pod, Service and policy churn is most of all changes: only the
            # waypoints those objects are (or were) bound to, or whose inputs
            # come from their namespace, can differ. A waypoint only pods reach
            # just has its endpoints refreshed (``refresh_endpoints``).
            pod_keys = [key for key in changes.keys if key.kind == "Pod"]
            other_keys = [key for key in changes.keys if key.kind not in _POD_KINDS]
            by_pods = self._bindings.rebind_pods(mesh, pod_keys)
            by_others = self._bindings.rebind_services(
                mesh, [key for key in other_keys if key.kind == "Service"]
            )
            pod_namespaces = {key.namespace for key in pod_keys}
            other_namespaces = {key.namespace for key in other_keys}
            gateways, refreshed = [], set()
            for gateway in mesh.objects(Gateway):
                key = f"{gateway.namespace}/{gateway.name}"
                scope = waypoint_scope(gateway.namespace, gateway.name)
                depends_on = self._namespaces.get(scope, frozenset())
                if key in by_others or depends_on & other_namespaces:
                    gateways.append(gateway)
                elif key in by_pods or depends_on & pod_namespaces:
                    gateways.append(gateway)
                    refreshed.add(scope)
            pods = _changed_pods(mesh, changes) if refreshed else {}
            return self._translate(
                mesh, self._bindings, gateways, changes, pods, refreshed, prune=False
            )
        self._bindings = WaypointBindings.build(mesh)
        return self._translate(
            mesh, self._bindings, list(mesh.objects(Gateway)), changes, {}, set(), prune=True
        )

    def _translate(
        self,
        mesh: Mesh,
        bindings: WaypointBindings,
        gateways: list[Gateway],
        changes: ChangeSet | None,
        pods: Mapping[str, Sequence[Pod]],
        refreshed: Container[str],
        *,
        prune: bool,
    ) -> list[Update]:
        """``refreshed``: the scopes whose inputs only ``pods`` changed (each pod as it is
        and as it was)."""
        updates: list[Update] = []
        current: set[str] = set()
        for gateway in sorted(gateways, key=lambda g: (g.namespace, g.name)):
            scope = waypoint_scope(gateway.namespace, gateway.name)
            previous = self._inputs.get(scope)
            if scope in refreshed and previous is not None:
                inputs: WaypointInputs | None = refresh_endpoints(mesh, bindings, previous, pods)
            else:
                inputs = collect(mesh, bindings, gateway)
            if inputs is None:
                continue
            current.add(scope)
            self._inputs[scope] = inputs
            if previous is None or inputs.config is not previous.config:
                self._namespaces[scope] = _namespaces(mesh, inputs)
            if changes is None or previous is None:
                updates += snapshot(scope, inputs)
            else:
                updates += _changed(scope, previous, inputs)
        if prune:
            for scope in sorted(set(self._inputs) - current):
                # The Gateway is gone (or no longer a waypoint): empty its scope.
                del self._inputs[scope]
                self._namespaces.pop(scope, None)
                updates += [
                    Update(scope, type_url, replace=True)
                    for type_url in (type_urls.CLUSTER, type_urls.ENDPOINT, type_urls.LISTENER)
                ]
        return updates


# Kinds whose effect on a waypoint is confined to waypoints bound to the
# changed objects or depending on their namespace (see ``_local_churn``).
_LOCAL_KINDS = frozenset({"Pod", "Service", "AuthorizationPolicy"})
# Kinds that change no waypoint's inputs but its endpoints and bound workloads.
_POD_KINDS = _IRRELEVANT_KINDS | {"Pod"}


def _local_churn(mesh: Mesh, changes: ChangeSet) -> bool:
    """Only pods, Services and AuthorizationPolicies changed; no pod (before or after)
    runs a waypoint, and no policy is mesh-wide (root namespace)."""
    if not changes.kinds - _IRRELEVANT_KINDS <= _LOCAL_KINDS:
        return False
    for key in changes.keys:
        if key.kind == "AuthorizationPolicy" and key.namespace == mesh.config.root_namespace:
            return False
        if key.kind == "Pod":
            for pod in (mesh.get_by_key(key), changes.previous.get(key)):
                if pod is not None and wellknown.GATEWAY_NAME in pod.labels:
                    return False
    return True


def _namespaces(mesh: Mesh, inputs: WaypointInputs) -> frozenset[str]:
    """Namespaces whose pods, Services or policies can change this waypoint's inputs,
    including those of route targets that do not exist (yet) and of pods that
    EndpointSlices name across namespaces."""
    config = inputs.config
    suffix = f".svc.{config.identity.domain_suffix}"
    targets = referenced_hosts(
        config.gateway_routes, config.virtual_services, config.identity.domain_suffix
    ) | {provider.hostname for provider in config.extension_providers}
    targets |= jwt.jwks_hosts(config.request_authentications)
    return frozenset(
        {
            config.identity.namespace,
            *(service.namespace for service in config.services),
            *(workload.namespace for workload in config.workloads),
            *slice_pod_namespaces(mesh, config.services),
            *(
                host.removesuffix(suffix).rpartition(".")[2]
                for host in targets
                if host.endswith(suffix)
            ),
        }
    )


def _changed_pods(mesh: Mesh, changes: ChangeSet) -> dict[str, list[Pod]]:
    """Every changed pod, as it is now and as it was (both decide which endpoints move),
    by namespace."""
    found: dict[str, list[Pod]] = {}
    for key in changes.keys:
        for obj in (mesh.get_by_key(key), changes.previous.get(key)):
            if isinstance(obj, Pod):
                found.setdefault(obj.namespace, []).append(obj)
    return found


def _changed(scope: str, previous: WaypointInputs, inputs: WaypointInputs) -> list[Update]:
    """The updates that take a waypoint from ``previous`` to ``inputs``: only the
    types, and for EDS only the assignments, that can differ."""
    # Each part is compared once (these compare whole model objects and endpoint lists:
    # comparing the inputs as a whole first cost as much as the rest under pod churn).
    before, after = previous.config, inputs.config
    config_changed = before != after
    if config_changed and dataclasses.replace(before, workloads=after.workloads) != after:
        return snapshot(scope, inputs)
    updates = []
    if config_changed:
        # Bound workloads are addresses in the main listener's matcher only.
        updates.append(_update(scope, type_urls.LISTENER, build_listeners(after)))
    moved = {
        key
        for key, endpoints in inputs.endpoints.items()
        if previous.endpoints.get(key) != endpoints
    }
    if moved:
        assignments = build_endpoints(inputs, only=moved)
        updates.append(_update(scope, type_urls.ENDPOINT, assignments, replace=False))
    return updates


def snapshot(scope: str, inputs: WaypointInputs) -> list[Update]:
    """The complete CDS, EDS and LDS of one waypoint, in push order."""
    return [
        _update(scope, type_urls.CLUSTER, build_clusters(inputs.config)),
        _update(scope, type_urls.ENDPOINT, build_endpoints(inputs)),
        _update(scope, type_urls.LISTENER, build_listeners(inputs.config)),
    ]


WaypointResource: TypeAlias = (
    cluster_pb2.Cluster | endpoint_pb2.ClusterLoadAssignment | listener_pb2.Listener
)


def _update(
    scope: str, type_url: str, messages: Iterable[WaypointResource], *, replace: bool = True
) -> Update:
    """``replace``: the messages are the complete set of the type (else: changed ones)."""
    return Update(
        scope,
        type_url,
        upserts=[Resource.from_message(type_url, _name(message), message) for message in messages],
        replace=replace,
    )


def _name(message: WaypointResource) -> str:
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return message.cluster_name
    return message.name


if TYPE_CHECKING:
    from xds.translate.base import Translator

    # mypy proves the class fulfils the pipeline's contract.
    _TRANSLATOR_CONTRACT: Translator = WaypointTranslator()
