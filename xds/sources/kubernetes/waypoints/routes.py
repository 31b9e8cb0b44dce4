"""Parent status of HTTPRoutes and GRPCRoutes bound to waypoints: pure functions.

Ours are the parents a waypoint serves: a Service or ServiceEntry (GAMMA,
the usual way in ambient) and a Gateway of class ``istio-waypoint``. For each
we write istiod's conditions (``pilot/pkg/config/kube/gateway/conditions.go``,
``conversion.go``), under its controller name ``istio.io/gateway-controller``:

- ``Accepted``: ``Route was valid``; or ``NoMatchingParent`` when the parent
  does not exist, or names a listener port / sectionName the waypoint lacks;
- ``ResolvedRefs``: ``All references resolved``; or ``BackendNotFound``
  (``backend(<host>) not found``) for a Service or ServiceEntry host that does
  not exist, ``InvalidKind`` for a backend kind we cannot route to;
- ``ResolvedWaypoints``: whether the parent Service (or its namespace) has
  ``istio.io/use-waypoint``; without it the route is ignored in ambient mode.

Other controllers' entries in ``status.parents`` are kept as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from xds.model import wellknown
from xds.model.gateway import (
    GATEWAY_GROUP,
    ReferenceGrant,
    ReferenceGrantFrom,
    reference_permitted,
)
from xds.model.networking import NETWORKING_GROUP
from xds.sources.kubernetes.waypoints.objects import WAYPOINT_CLASS
from xds.sources.kubernetes.waypoints.status import Condition, conditions

ROUTE_CONTROLLER: Final = "istio.io/gateway-controller"
MISSING_LABEL: Final = (
    "istio.io/use-waypoint label missing from parent and parent namespace; "
    "in ambient mode, route will not be respected"
)


class MeshLookup(Protocol):
    """What the status needs to know of the mesh (answered from the model)."""

    def gateway(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """``{"class": str, "listeners": [(name, port), ...]}`` of a Gateway."""

    def service_labels(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def service_entry_labels(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    def has_host(self, namespace: str, host: str) -> bool:
        """A ServiceEntry visible from ``namespace`` declares ``host``."""

    def reference_grants(self, namespace: str) -> Iterable[ReferenceGrant]:
        """The ReferenceGrants of ``namespace``."""


def _ref_key(ref: Mapping[str, Any], route_namespace: str) -> tuple[str, ...]:
    return (
        str(ref.get("group", GATEWAY_GROUP)),
        str(ref.get("kind", "Gateway")),
        str(ref.get("namespace") or route_namespace),
        str(ref.get("name", "")),
        str(ref.get("sectionName", "")),
        str(ref.get("port", "")),
    )


def is_ours(ref: Mapping[str, Any], route_namespace: str, mesh: MeshLookup) -> bool:
    group, kind, namespace, name = _ref_key(ref, route_namespace)[:4]
    if (group, kind) in (("", "Service"), (NETWORKING_GROUP, "ServiceEntry")):
        return True
    if (group, kind) == (GATEWAY_GROUP, "Gateway"):
        gateway = mesh.gateway(namespace, name)
        return gateway is not None and gateway["class"] == WAYPOINT_CLASS
    return False


def _accepted(
    ref: Mapping[str, Any], route_namespace: str, mesh: MeshLookup
) -> tuple[Condition, Condition]:
    """``Accepted`` and ``ResolvedWaypoints`` for one parent."""
    _, kind, namespace, name = _ref_key(ref, route_namespace)[:4]
    valid = Condition("Accepted", True, "Accepted", "Route was valid")
    resolved = Condition("ResolvedWaypoints", True, "ResolvedWaypoints", "All waypoints resolved")
    if kind in ("Service", "ServiceEntry"):
        labels = (
            mesh.service_labels(namespace, name)
            if kind == "Service"
            else mesh.service_entry_labels(namespace, name)
        )
        if labels is None:
            what = "parent service" if kind == "Service" else "parent service entry"
            return (
                Condition("Accepted", False, "NoMatchingParent", f'{what}: "{name}" not found'),
                Condition("ResolvedWaypoints", False, "NoMatchingParent", "parent not found"),
            )
        namespace_labels = mesh.namespace_labels(namespace) or {}
        if wellknown.USE_WAYPOINT not in labels and wellknown.USE_WAYPOINT not in namespace_labels:
            resolved = Condition(
                "ResolvedWaypoints", False, "MissingUseWaypointLabel", MISSING_LABEL
            )
        return valid, resolved
    gateway = mesh.gateway(namespace, name) or {"listeners": []}
    listeners = gateway["listeners"]
    port, section = ref.get("port"), ref.get("sectionName")
    if port is not None and all(p != port for _, p in listeners):
        return Condition("Accepted", False, "NoMatchingParent", f"port {port} not found"), resolved
    if section and all(n != section for n, _ in listeners):
        return (
            Condition("Accepted", False, "NoMatchingParent", f'sectionName "{section}" not found'),
            resolved,
        )
    return valid, resolved


def _backends(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every backend a route sends to: its backendRefs and its mirrors' (both resolved,
    and permitted, as the translator resolves them)."""
    rules = (route.get("spec") or {}).get("rules") or ()
    refs: list[Mapping[str, Any]] = []
    for rule in rules:
        refs.extend(rule.get("backendRefs") or ())
        for item in rule.get("filters") or ():
            mirror = (item.get("requestMirror") or {}).get("backendRef")
            if item.get("type") == "RequestMirror" and mirror:
                refs.append(mirror)
    return refs


def resolved_refs(route: Mapping[str, Any], mesh: MeshLookup, domain_suffix: str) -> Condition:
    route_namespace = str((route.get("metadata") or {}).get("namespace") or "")
    route_kind = str(route.get("kind") or "HTTPRoute")
    source = ReferenceGrantFrom(GATEWAY_GROUP, route_kind, route_namespace)
    for ref in _backends(route):
        group, kind = str(ref.get("group", "")), str(ref.get("kind", "Service"))
        namespace = str(ref.get("namespace") or route_namespace)
        name = str(ref.get("name", ""))
        # As istiod: permission is checked before existence.
        if not reference_permitted(
            mesh.reference_grants(namespace), source, group, kind, namespace, name
        ):
            return Condition(
                "ResolvedRefs",
                False,
                "RefNotPermitted",
                f"backendRef {name}/{namespace} not accessible to a {route_kind} in namespace "
                f'"{route_namespace}" (missing a ReferenceGrant?)',
            )
        if (group, kind) == ("", "Service"):
            if mesh.service_labels(namespace, name) is None:
                return Condition(
                    "ResolvedRefs",
                    False,
                    "BackendNotFound",
                    f"backend({name}.{namespace}.svc.{domain_suffix}) not found",
                )
        elif (group, kind) == (NETWORKING_GROUP, "Hostname"):
            if not mesh.has_host(namespace, name):
                return Condition(
                    "ResolvedRefs", False, "BackendNotFound", f"backend({name}) not found"
                )
        else:
            return Condition(
                "ResolvedRefs",
                False,
                "InvalidKind",
                f'referencing unsupported backendRef: group "{group}" kind "{kind}"',
            )
    return Condition("ResolvedRefs", True, "ResolvedRefs", "All references resolved")


def route_parents(
    route: Mapping[str, Any], mesh: MeshLookup, *, domain_suffix: str, now: str
) -> list[dict[str, Any]]:
    """``status.parents`` as it should be: other controllers' entries kept in place, ours
    rewritten, added or dropped."""
    meta = route.get("metadata") or {}
    route_namespace = str(meta.get("namespace") or "")
    generation = meta.get("generation")
    current = list((route.get("status") or {}).get("parents") or ())
    ours = [
        ref
        for ref in (route.get("spec") or {}).get("parentRefs") or ()
        if is_ours(ref, route_namespace, mesh)
    ]
    refs_condition = resolved_refs(route, mesh, domain_suffix)
    wanted: dict[tuple[str, ...], dict[str, Any]] = {}
    for ref in ours:
        key = _ref_key(ref, route_namespace)
        previous: Mapping[str, Any] = next(
            (
                p
                for p in current
                if p.get("controllerName") == ROUTE_CONTROLLER
                and _ref_key(p.get("parentRef") or {}, route_namespace) == key
            ),
            {},
        )
        accepted, waypoints = _accepted(ref, route_namespace, mesh)
        wanted[key] = {
            "parentRef": dict(ref),
            "controllerName": ROUTE_CONTROLLER,
            "conditions": conditions(
                previous.get("conditions") or (),
                [accepted, refs_condition, waypoints],
                generation,
                now,
            ),
        }
    result: list[dict[str, Any]] = []
    for entry in current:
        key = _ref_key(entry.get("parentRef") or {}, route_namespace)
        if entry.get("controllerName") != ROUTE_CONTROLLER:
            result.append(dict(entry))
        elif key in wanted:
            result.append(wanted.pop(key))
    result += [wanted[key] for key in sorted(wanted)]
    return result


def parents_differ(
    current: Sequence[Mapping[str, Any]], wanted: Sequence[Mapping[str, Any]]
) -> bool:
    return [dict(p) for p in current] != [dict(p) for p in wanted]
