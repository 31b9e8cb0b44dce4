"""Route parent status for waypoints, table-driven against a small mesh."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from xds.model.gateway import (
    GATEWAY_GROUP,
    ReferenceGrant,
    ReferenceGrantFrom,
    ReferenceGrantTo,
)
from xds.model.meta import ObjectMeta
from xds.sources.kubernetes.waypoints.routes import ROUTE_CONTROLLER, route_parents

NOW = "2026-01-01T00:00:00Z"


@dataclass
class Mesh:
    services: dict[tuple[str, str], dict[str, str]] = field(
        default_factory=lambda: {
            ("shop", "cart"): {"istio.io/use-waypoint": "waypoint"},
            ("shop", "plain"): {},
            ("shop", "backend"): {},
            ("store", "granted"): {},
            ("store", "other"): {},
        }
    )
    namespaces: dict[str, dict[str, str]] = field(default_factory=lambda: {"shop": {}})
    gateways: dict[tuple[str, str], dict[str, Any]] = field(
        default_factory=lambda: {
            ("shop", "waypoint"): {"class": "istio-waypoint", "listeners": [("mesh", 15008)]},
            ("shop", "ingress"): {"class": "istio", "listeners": [("http", 80)]},
        }
    )
    hosts: set[str] = field(default_factory=lambda: {"api.example.com"})
    grants: list[ReferenceGrant] = field(
        default_factory=lambda: [
            ReferenceGrant(
                meta=ObjectMeta(name="routes-from-shop", namespace="store"),
                from_=(ReferenceGrantFrom(GATEWAY_GROUP, "HTTPRoute", "shop"),),
                to=(ReferenceGrantTo("", "Service", "granted"),),
            )
        ]
    )

    def gateway(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.gateways.get((namespace, name))

    def service_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.services.get((namespace, name))

    def service_entry_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self.namespaces.get(namespace)

    def has_host(self, namespace: str, host: str) -> bool:
        return host in self.hosts

    def reference_grants(self, namespace: str) -> list[ReferenceGrant]:
        return [grant for grant in self.grants if grant.namespace == namespace]


def route(
    parents: list[dict[str, Any]],
    backends: list[dict[str, Any]] | None = None,
    status: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "shop", "generation": 2},
        "spec": {
            "parentRefs": parents,
            "rules": [
                {
                    "backendRefs": backends
                    if backends is not None
                    else [{"name": "backend", "port": 80}]
                }
            ],
        },
        "status": {"parents": status or []},
    }


def conditions_of(entry: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in entry["conditions"]}


SERVICE_PARENT = {"group": "", "kind": "Service", "name": "cart", "port": 80}
VALID = ("True", "Accepted", "Route was valid")
RESOLVED = ("True", "ResolvedRefs", "All references resolved")
WAYPOINTS = ("True", "ResolvedWaypoints", "All waypoints resolved")


@pytest.mark.parametrize(
    ("parent", "backends", "expected"),
    [
        (
            SERVICE_PARENT,
            None,
            {"Accepted": VALID, "ResolvedRefs": RESOLVED, "ResolvedWaypoints": WAYPOINTS},
        ),
        (
            {"group": "", "kind": "Service", "name": "gone"},
            None,
            {
                "Accepted": ("False", "NoMatchingParent", 'parent service: "gone" not found'),
                "ResolvedWaypoints": ("False", "NoMatchingParent", "parent not found"),
            },
        ),
        (
            {"group": "", "kind": "Service", "name": "plain"},
            None,
            {
                "Accepted": VALID,
                "ResolvedWaypoints": (
                    "False",
                    "MissingUseWaypointLabel",
                    "istio.io/use-waypoint label missing from parent and parent namespace; "
                    "in ambient mode, route will not be respected",
                ),
            },
        ),
        (
            SERVICE_PARENT,
            [{"name": "missing", "port": 80}],
            {
                "ResolvedRefs": (
                    "False",
                    "BackendNotFound",
                    "backend(missing.shop.svc.cluster.local) not found",
                )
            },
        ),
        (
            SERVICE_PARENT,
            [
                {
                    "group": "networking.istio.io",
                    "kind": "Hostname",
                    "name": "api.example.com",
                    "port": 443,
                }
            ],
            {"ResolvedRefs": RESOLVED},
        ),
        (
            SERVICE_PARENT,
            [
                {
                    "group": "networking.istio.io",
                    "kind": "Hostname",
                    "name": "nope.example.com",
                    "port": 443,
                }
            ],
            {"ResolvedRefs": ("False", "BackendNotFound", "backend(nope.example.com) not found")},
        ),
        (
            SERVICE_PARENT,
            [{"name": "granted", "namespace": "store", "port": 80}],
            {"ResolvedRefs": RESOLVED},
        ),
        (
            SERVICE_PARENT,
            [{"name": "other", "namespace": "store", "port": 80}],
            {
                "ResolvedRefs": (
                    "False",
                    "RefNotPermitted",
                    'backendRef other/store not accessible to a HTTPRoute in namespace "shop" '
                    "(missing a ReferenceGrant?)",
                )
            },
        ),
        (
            SERVICE_PARENT,
            [{"group": "example.com", "kind": "Bucket", "name": "b"}],
            {
                "ResolvedRefs": (
                    "False",
                    "InvalidKind",
                    'referencing unsupported backendRef: group "example.com" kind "Bucket"',
                )
            },
        ),
        ({"name": "waypoint"}, None, {"Accepted": VALID, "ResolvedWaypoints": WAYPOINTS}),
        (
            {"name": "waypoint", "sectionName": "other"},
            None,
            {"Accepted": ("False", "NoMatchingParent", 'sectionName "other" not found')},
        ),
        (
            {"name": "waypoint", "port": 80},
            None,
            {"Accepted": ("False", "NoMatchingParent", "port 80 not found")},
        ),
    ],
)
def test_our_parent_conditions(
    parent: dict[str, Any],
    backends: list[dict[str, Any]] | None,
    expected: dict[str, tuple[str, str, str]],
) -> None:
    [entry] = route_parents(
        route([parent], backends), Mesh(), domain_suffix="cluster.local", now=NOW
    )
    assert entry["controllerName"] == ROUTE_CONTROLLER
    assert entry["parentRef"] == parent
    found = conditions_of(entry)
    for kind, value in expected.items():
        assert found[kind] == value, kind
    assert all(c["observedGeneration"] == 2 for c in entry["conditions"])


def test_the_namespace_label_resolves_the_waypoint_too() -> None:
    mesh = Mesh(namespaces={"shop": {"istio.io/use-waypoint": "waypoint"}})
    [entry] = route_parents(
        route([{"group": "", "kind": "Service", "name": "plain"}]),
        mesh,
        domain_suffix="cluster.local",
        now=NOW,
    )
    assert conditions_of(entry)["ResolvedWaypoints"] == WAYPOINTS


def test_other_controllers_parents_are_kept_and_ours_replaced_in_place() -> None:
    foreign = {
        "parentRef": {"name": "ingress"},
        "controllerName": "example.com/ingress",
        "conditions": [{"type": "Accepted", "status": "True"}],
    }
    stale = {
        "parentRef": {"group": "", "kind": "Service", "name": "old"},
        "controllerName": ROUTE_CONTROLLER,
        "conditions": [],
    }
    mine = {
        "parentRef": SERVICE_PARENT,
        "controllerName": ROUTE_CONTROLLER,
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "Route was valid",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
    }
    parents = route_parents(
        route([{"name": "ingress"}, SERVICE_PARENT], status=[foreign, stale, mine]),
        Mesh(),
        domain_suffix="cluster.local",
        now=NOW,
    )
    assert parents[0] == foreign  # an ingress class Gateway is not ours
    assert [p["parentRef"] for p in parents] == [{"name": "ingress"}, SERVICE_PARENT]
    accepted = next(c for c in parents[1]["conditions"] if c["type"] == "Accepted")
    assert accepted["lastTransitionTime"] == "2025-01-01T00:00:00Z"


def test_a_route_with_no_parent_of_ours_gets_nothing() -> None:
    assert (
        route_parents(route([{"name": "ingress"}]), Mesh(), domain_suffix="cluster.local", now=NOW)
        == []
    )


def test_a_mirror_to_another_namespace_needs_a_grant_too() -> None:
    mirrored = route([SERVICE_PARENT])
    mirrored["spec"]["rules"][0]["filters"] = [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "other", "namespace": "store", "port": 80}},
        }
    ]
    [entry] = route_parents(mirrored, Mesh(), domain_suffix="cluster.local", now=NOW)
    assert conditions_of(entry)["ResolvedRefs"][:2] == ("False", "RefNotPermitted")
