"""Gateway and GatewayClass status as istiod writes it (reasons, messages, addresses)."""

from __future__ import annotations

from typing import Any

import pytest

from xds.sources.kubernetes.waypoints.status import (
    Condition,
    conditions,
    differs,
    gateway_class_status,
    gateway_status,
)

HBONE = {"name": "mesh", "port": 15008, "protocol": "HBONE"}
SERVICE = {"spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"]}}
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def gateway(
    listeners: list[dict[str, Any]], status: dict[str, Any] | None = None, generation: int = 3
) -> dict[str, Any]:
    return {
        "metadata": {"name": "waypoint", "namespace": "shop", "generation": generation},
        "spec": {"gatewayClassName": "istio-waypoint", "listeners": listeners},
        "status": status or {},
    }


def by_type(entries: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in entries}


@pytest.mark.parametrize(
    ("listeners", "service", "accepted", "programmed"),
    [
        (
            [HBONE],
            SERVICE,
            ("True", "Accepted", "Resource accepted"),
            (
                "True",
                "Programmed",
                "Resource programmed, assigned to service(s) waypoint.shop.svc.cluster.local:15008",
            ),
        ),
        (
            [HBONE],
            None,
            ("True", "Accepted", "Resource accepted"),
            (
                "False",
                "AddressNotUsable",
                "Failed to assign to any requested addresses: hostname "
                '"waypoint.shop.svc.cluster.local" not found',
            ),
        ),
        (
            [{"name": "http", "port": 80, "protocol": "HTTP"}],
            SERVICE,
            ("False", "ListenersNotValid", "None of the Gateway's listeners are valid"),
            None,
        ),
        (
            [HBONE, {"name": "http", "port": 80, "protocol": "HTTP"}],
            SERVICE,
            ("True", "ListenersNotValid", "One or more of the Gateway's listeners are invalid"),
            None,
        ),
    ],
)
def test_gateway_conditions(
    listeners: list[dict[str, Any]],
    service: dict[str, Any] | None,
    accepted: tuple[str, str, str],
    programmed: tuple[str, str, str] | None,
) -> None:
    status = gateway_status(
        gateway(listeners), service, attached_routes=0, cluster_domain="cluster.local", now=T0
    )
    found = by_type(status["conditions"])
    assert found["Accepted"] == accepted
    if programmed is not None:
        assert found["Programmed"] == programmed
    assert found["ResolvedRefs"] == ("True", "ResolvedRefs", "All references resolved")
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_addresses_are_the_cluster_ip_then_the_host_and_are_never_taken_back() -> None:
    status = gateway_status(
        gateway([HBONE]), SERVICE, attached_routes=0, cluster_domain="cluster.local", now=T0
    )
    assert status["addresses"] == [
        {"type": "IPAddress", "value": "10.96.0.20"},
        {"type": "Hostname", "value": "waypoint.shop.svc.cluster.local"},
    ]
    # The Service goes away: ztunnels keep the address they were given.
    later = gateway_status(
        gateway([HBONE], status), None, attached_routes=0, cluster_domain="cluster.local", now=T1
    )
    assert later["addresses"] == status["addresses"]
    assert by_type(later["conditions"])["Programmed"][0] == "False"
    # A headless Service has no address to give.
    headless = gateway_status(
        gateway([HBONE]),
        {"spec": {"clusterIP": "None"}},
        attached_routes=0,
        cluster_domain="cluster.local",
        now=T0,
    )
    assert "addresses" not in headless


def test_listener_status_counts_routes_on_valid_listeners_only() -> None:
    status = gateway_status(
        gateway([HBONE, {"name": "http", "port": 80, "protocol": "HTTP"}]),
        SERVICE,
        attached_routes=2,
        cluster_domain="cluster.local",
        now=T0,
    )
    mesh, http = status["listeners"]
    assert (mesh["name"], mesh["attachedRoutes"]) == ("mesh", 2)
    assert by_type(mesh["conditions"])["Accepted"] == ("True", "Accepted", "No errors found")
    assert [k["kind"] for k in mesh["supportedKinds"]] == ["HTTPRoute", "GRPCRoute"]
    assert http["attachedRoutes"] == 0
    assert by_type(http["conditions"])["Accepted"] == (
        "False",
        "UnsupportedProtocol",
        'Expected a single listener on port 15008 with protocol "HBONE"',
    )


def test_transition_time_moves_only_when_the_status_does() -> None:
    first = conditions([], [Condition("Programmed", False, "AddressNotUsable", "x")], 1, T0)
    same = conditions(first, [Condition("Programmed", False, "AddressNotUsable", "y")], 2, T1)
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "y"
    flipped = conditions(same, [Condition("Programmed", True, "Programmed", "z")], 2, T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_a_rewrite_is_needed_only_when_something_changed() -> None:
    status = gateway_status(
        gateway([HBONE]), SERVICE, attached_routes=0, cluster_domain="cluster.local", now=T0
    )
    again = gateway_status(
        gateway([HBONE], status), SERVICE, attached_routes=0, cluster_domain="cluster.local", now=T1
    )
    assert not differs(status, again)
    more_routes = gateway_status(
        gateway([HBONE], status), SERVICE, attached_routes=1, cluster_domain="cluster.local", now=T1
    )
    assert differs(status, more_routes)


@pytest.mark.parametrize(
    ("controller", "expected"),
    [
        ("istio.io/mesh-controller", ("True", "Accepted", "Handled by Istio controller")),
        ("example.com/other", None),
    ],
)
def test_gateway_class_status(controller: str, expected: tuple[str, str, str] | None) -> None:
    status = gateway_class_status(
        {
            "metadata": {"name": "istio-waypoint", "generation": 1},
            "spec": {"controllerName": controller},
        },
        T0,
    )
    if expected is None:
        assert status is None
    else:
        assert status is not None
        assert by_type(status["conditions"])["Accepted"] == expected
