"""Waypoint binding: which Gateways are waypoints and what binds to them (ambient-index §5).

Modelled on upstream's TestAmbientIndex_WaypointForWorkloadTraffic,
TestUpdateWaypointForWorkload, TestAmbientIndex_WaypointConfiguredOnlyWhenReady,
TestAmbientIndex_WaypointInboundBinding, TestMakeAllowedRoutes and the canary
tests, with our own fixtures.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from tests import builders
from tests.builders import mesh_store, model
from xds.model import KubeObject
from xds.model.core import Namespace, Pod, Service
from xds.model.gateway import FromNamespaces, Gateway, GatewayClass
from xds.translate.binding import (
    BindingFailure,
    InboundBinding,
    TunnelProtocol,
    Waypoint,
    WaypointAddress,
    WaypointBindings,
    all_waypoints,
    canary_waypoints,
    instance_of,
    parse_inbound_binding,
    service_binding,
    workload_binding,
)


def namespace(
    name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> Namespace:
    return model(builders.namespace(name, labels=labels, annotations=annotations), Namespace)


def gateway(
    name: str,
    ns: str = "ns1",
    *,
    cls: str = "istio-waypoint",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: list[dict[str, str]] | None = None,
    spec_addresses: list[dict[str, str]] | None = None,
    listeners: list[dict[str, Any]] | None = None,
) -> Gateway:
    """A Gateway, addressed by its Service's hostname unless ``status`` says otherwise."""
    if status is None:
        status = [builders.hostname_address(f"{name}.{ns}.svc.cluster.local")]
    gw = builders.gateway(
        ns,
        name,
        cls=cls,
        addresses=status,
        listeners=listeners,
        labels=labels,
        annotations=annotations,
        spec={"addresses": spec_addresses} if spec_addresses else None,
    )
    return model(gw, Gateway)


def pod(
    name: str, ns: str = "ns1", labels: dict[str, str] | None = None, sa: str = "default"
) -> Pod:
    manifest = builders.pod(ns, name, "10.0.0.1", labels=labels, service_account=sa, ready=None)
    return model(manifest, Pod)


def service(
    name: str,
    ns: str = "ns1",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Service:
    manifest = builders.service(
        ns, name, "10.96.0.10", [{"port": 80}], labels=labels, annotations=annotations
    )
    return model(manifest, Service)


HOSTNAME_WP = WaypointAddress(namespace="ns1", hostname="waypoint.ns1.svc.cluster.local")


# --- Gateway -> Waypoint ---------------------------------------------------------------


def test_gateway_with_hostname_status_is_a_waypoint_addressed_by_hostname() -> None:
    mesh = mesh_store(
        gateway("waypoint"),
        pod(
            "wp-1", labels={"gateway.networking.k8s.io/gateway-name": "waypoint"}, sa="waypoint-sa"
        ),
    )
    assert all_waypoints(mesh) == {
        "ns1/waypoint": Waypoint(
            namespace="ns1",
            name="waypoint",
            gateway_class_name="istio-waypoint",
            address=HOSTNAME_WP,
            traffic_type="service",
            service_accounts=("waypoint-sa",),
        )
    }


def test_hostname_status_address_preferred_over_ip_and_ip_uses_local_network() -> None:
    both = gateway(
        "wp",
        status=[
            {"type": "IPAddress", "value": "10.1.1.1"},
            {"type": "Hostname", "value": "wp.ns1.svc.cluster.local"},
        ],
    )
    ip_only = gateway("wp2", status=[{"value": "10.1.1.2"}])
    net = namespace("istio-system", {"topology.istio.io/network": "net-a"})
    waypoints = all_waypoints(mesh_store(both, ip_only, net))
    assert waypoints["ns1/wp"].address == WaypointAddress(
        namespace="ns1", hostname="wp.ns1.svc.cluster.local"
    )
    assert waypoints["ns1/wp2"].address == WaypointAddress(
        namespace="ns1", ip=ip_address("10.1.1.2"), network="net-a"
    )


def test_gateway_without_addresses_is_not_ready() -> None:
    assert all_waypoints(mesh_store(gateway("waypoint", status=[]))) == {}


def test_spec_addresses_stand_in_for_status_in_file_mode() -> None:
    gw = gateway(
        "waypoint", status=[], spec_addresses=[{"type": "Hostname", "value": "wp.example"}]
    )
    assert all_waypoints(mesh_store(gw))["ns1/waypoint"].address == WaypointAddress(
        namespace="ns1", hostname="wp.example"
    )


def test_any_gateway_class_with_an_address_is_a_waypoint() -> None:
    assert "ns1/ingress" in all_waypoints(mesh_store(gateway("ingress", cls="istio")))


@pytest.mark.parametrize(
    ("class_label", "gateway_label", "expected"),
    [
        (None, None, "service"),
        ("workload", None, "workload"),
        ("workload", "all", "all"),
        (None, "none", "none"),
    ],
)
def test_traffic_type_gateway_label_wins_over_class(
    class_label: str | None, gateway_label: str | None, expected: str
) -> None:
    cls_labels = {"istio.io/waypoint-for": class_label} if class_label else {}
    gw_labels = {"istio.io/waypoint-for": gateway_label} if gateway_label else {}
    gw_class = model(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "istio-waypoint", "labels": cls_labels},
            "spec": {"controllerName": "istio.io/mesh-controller"},
        },
        GatewayClass,
    )
    waypoints = all_waypoints(mesh_store(gw_class, gateway("waypoint", labels=gw_labels)))
    assert waypoints["ns1/waypoint"].traffic_type == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PROXY", InboundBinding(TunnelProtocol.PROXY, 0)),
        ("PROXY/15088", InboundBinding(TunnelProtocol.PROXY, 15088)),
        ("NONE/8080", InboundBinding(TunnelProtocol.NONE, 8080)),
        ("NONE", InboundBinding(TunnelProtocol.NONE, 0)),
        ("HTTP", None),
        ("PROXY/1/2", None),
    ],
)
def test_inbound_binding_annotation(value: str, expected: InboundBinding | None) -> None:
    assert parse_inbound_binding(value) == expected


def test_sandwich_allowed_routes_come_from_the_bound_listener() -> None:
    gw = gateway(
        "ingress",
        cls="istio",
        annotations={"ambient.istio.io/waypoint-inbound-binding": "PROXY/15088"},
        listeners=[
            {"name": "mesh", "port": 15008, "protocol": "HBONE"},
            {
                "name": "proxy",
                "port": 15088,
                "protocol": "istio.io/PROXY",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            },
        ],
    )
    waypoint = all_waypoints(mesh_store(gw))["ns1/ingress"]
    assert waypoint.inbound_binding == InboundBinding(TunnelProtocol.PROXY, 15088)
    assert waypoint.allowed_routes.namespaces_from is FromNamespaces.ALL


def test_allowed_routes_default_to_same_without_hbone_listener() -> None:
    gw = gateway(
        "wp",
        listeners=[
            {
                "name": "http",
                "port": 80,
                "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        ],
    )
    assert (
        all_waypoints(mesh_store(gw))["ns1/wp"].allowed_routes.namespaces_from
        is FromNamespaces.SAME
    )


# --- Binding precedence ----------------------------------------------------------------


def _waypoints(*gateways: Gateway, extra: tuple[KubeObject, ...] = ()) -> dict[str, Waypoint]:
    return all_waypoints(mesh_store(*gateways, *extra))


def test_pod_label_overrides_namespace_and_none_opts_out() -> None:
    waypoints = _waypoints(
        gateway("ns-wp", labels={"istio.io/waypoint-for": "all"}),
        gateway("pod-wp", labels={"istio.io/waypoint-for": "all"}),
    )
    ns = namespace("ns1", {"istio.io/use-waypoint": "ns-wp"})
    assert workload_binding("ns1", {}, ns, waypoints).waypoint == waypoints["ns1/ns-wp"]
    assert (
        workload_binding("ns1", {"istio.io/use-waypoint": "pod-wp"}, ns, waypoints).waypoint
        == waypoints["ns1/pod-wp"]
    )
    opted_out = workload_binding("ns1", {"istio.io/use-waypoint": "none"}, ns, waypoints)
    assert opted_out.waypoint is None and opted_out.error is None


def test_missing_waypoint_on_object_does_not_fall_back_to_namespace() -> None:
    waypoints = _waypoints(gateway("ns-wp"))
    ns = namespace("ns1", {"istio.io/use-waypoint": "ns-wp"})
    binding = service_binding(
        service("svc", labels={"istio.io/use-waypoint": "missing"}), ns, waypoints
    )
    assert binding.waypoint is None
    assert binding.error is not None and binding.error.reason is BindingFailure.NOT_READY


@pytest.mark.parametrize(
    ("traffic", "service_bound", "workload_bound"),
    [
        ("service", True, False),
        ("workload", False, True),
        ("all", True, True),
        ("none", False, False),
    ],
)
def test_waypoint_for_decides_what_binds(
    traffic: str, service_bound: bool, workload_bound: bool
) -> None:
    waypoints = _waypoints(gateway("wp", labels={"istio.io/waypoint-for": traffic}))
    labels = {"istio.io/use-waypoint": "wp"}
    svc = service_binding(service("svc", labels=labels), namespace("ns1"), waypoints)
    wl = workload_binding("ns1", labels, namespace("ns1"), waypoints)
    assert (svc.waypoint is not None) is service_bound
    assert (wl.waypoint is not None) is workload_bound
    if not workload_bound:
        assert wl.error is not None
        assert wl.error.reason is BindingFailure.UNSUPPORTED_TRAFFIC_TYPE


def test_service_waypoint_inherited_by_namespace_is_silently_unused_for_workloads() -> None:
    waypoints = _waypoints(gateway("wp"))
    binding = workload_binding(
        "ns1", {}, namespace("ns1", {"istio.io/use-waypoint": "wp"}), waypoints
    )
    assert binding.waypoint is None and binding.error is None


def test_cross_namespace_needs_allowed_routes() -> None:
    same = gateway("wp", ns="infra")
    everyone = gateway(
        "open",
        ns="infra",
        listeners=[
            {
                "name": "mesh",
                "port": 15008,
                "protocol": "HBONE",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        ],
    )
    selected = gateway(
        "sel",
        ns="infra",
        listeners=[
            {
                "name": "mesh",
                "port": 15008,
                "protocol": "HBONE",
                "allowedRoutes": {
                    "namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}
                },
            }
        ],
    )
    waypoints = _waypoints(same, everyone, selected)

    def bind(name: str, ns: Namespace) -> Waypoint | None:
        labels = {"istio.io/use-waypoint": name, "istio.io/use-waypoint-namespace": "infra"}
        return service_binding(service("svc", labels=labels), ns, waypoints).waypoint

    assert bind("wp", namespace("ns1")) is None
    assert bind("open", namespace("ns1")) == waypoints["infra/open"]
    assert bind("sel", namespace("ns1")) is None
    assert bind("sel", namespace("ns1", {"team": "a"})) == waypoints["infra/sel"]


def test_waypoint_managed_services_never_get_a_waypoint() -> None:
    waypoints = _waypoints(gateway("wp"))
    svc = service("wp", labels={"gateway.istio.io/managed": "istio.io-mesh-controller"})
    ns = namespace("ns1", {"istio.io/use-waypoint": "wp"})
    assert service_binding(svc, ns, waypoints).waypoint is None


def test_instances_are_recognised_by_gateway_name_label() -> None:
    waypoints = _waypoints(gateway("wp"))
    assert (
        instance_of("ns1", {"gateway.networking.k8s.io/gateway-name": "wp"}, waypoints)
        == waypoints["ns1/wp"]
    )
    assert instance_of("ns2", {"gateway.networking.k8s.io/gateway-name": "wp"}, waypoints) is None


# --- Canary --------------------------------------------------------------------------


def test_canary_splits_weight_between_primary_and_canary() -> None:
    waypoints = _waypoints(gateway("wp"), gateway("wp-canary"))
    svc = service(
        "svc",
        labels={"istio.io/use-waypoint": "wp", "istio.io/use-waypoint-canary": "wp-canary"},
        annotations={"istio.io/use-waypoint-canary-weight": "20"},
    )
    primary = service_binding(svc, namespace("ns1"), waypoints)
    weighted, error = canary_waypoints(svc, namespace("ns1"), primary, waypoints)
    assert error is None
    assert [(w.waypoint.key, w.weight) for w in weighted] == [("ns1/wp", 80), ("ns1/wp-canary", 20)]


@pytest.mark.parametrize(
    ("canary", "weight", "reason"),
    [
        ("wp", "10", BindingFailure.CANARY_SAME_AS_PRIMARY),
        ("wp-canary", "101", BindingFailure.CANARY_INVALID_WEIGHT),
        ("wp-canary", "ten", BindingFailure.CANARY_INVALID_WEIGHT),
        ("absent", "10", BindingFailure.NOT_READY),
    ],
)
def test_invalid_canary_falls_back_to_primary(
    canary: str, weight: str, reason: BindingFailure
) -> None:
    waypoints = _waypoints(gateway("wp"), gateway("wp-canary"))
    svc = service(
        "svc",
        labels={"istio.io/use-waypoint": "wp", "istio.io/use-waypoint-canary": canary},
        annotations={"istio.io/use-waypoint-canary-weight": weight},
    )
    primary = service_binding(svc, namespace("ns1"), waypoints)
    weighted, error = canary_waypoints(svc, namespace("ns1"), primary, waypoints)
    assert weighted == ()
    assert error is not None and error.reason is reason


# --- Whole-mesh index ----------------------------------------------------------------


def test_bindings_index_lists_services_and_workloads_per_waypoint() -> None:
    mesh = mesh_store(
        namespace("ns1", {"istio.io/use-waypoint": "wp"}),
        namespace("ns2"),
        gateway("wp", labels={"istio.io/waypoint-for": "all"}),
        pod("wp-pod", labels={"gateway.networking.k8s.io/gateway-name": "wp"}),
        pod("b"),
        pod("a"),
        pod("opt-out", labels={"istio.io/use-waypoint": "none"}),
        pod("elsewhere", ns="ns2"),
        service("svc"),
        service("other", ns="ns2"),
    )
    bindings = WaypointBindings.build(mesh)
    assert [s.name for s in bindings.services_for("ns1", "wp")] == ["svc"]
    assert [w.name for w in bindings.workloads_for("ns1", "wp")] == ["a", "b"]
    assert bindings.workloads_for("ns1", "absent") == []
