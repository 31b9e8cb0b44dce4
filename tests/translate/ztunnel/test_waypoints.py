"""Waypoint attachment as ztunnel sees it: Workload.waypoint, Service.waypoint,
application_tunnel. Modelled on upstream TestAmbientIndex_WaypointForWorkloadTraffic,
TestAmbientIndex_WaypointAddressAddedToWorkloads, TestAmbientIndex_WaypointInboundBinding,
TestAmbientIndex_WaypointConfiguredOnlyWhenReady and TestUpdateWaypointForWorkload.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tests import builders
from tests.builders import HBONE_LISTENER, Manifest, yaml_text
from tests.translate.ztunnel.fixtures import NETWORK, assert_proto, ip, pod_workload, translate
from xds.proto.istio.workload import workload_pb2 as wl

LISTENERS = [
    {**HBONE_LISTENER, "allowedRoutes": {"namespaces": {"from": "All"}}},
    {"name": "proxy", "port": 15088, "protocol": "istio.io/PROXY"},
]


def gateway(
    name: str = "waypoint",
    namespace: str = "ns1",
    *,
    waypoint_for: str = "all",
    cls: str = "istio-waypoint",
    addresses: Sequence[Manifest] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    """A Gateway open to routes from all namespaces, addressed by its Service's hostname
    unless ``addresses`` say otherwise."""
    if addresses is None:
        addresses = [builders.hostname_address(f"{name}.{namespace}.svc.cluster.local")]
    return yaml_text(
        builders.gateway(
            namespace,
            name,
            cls=cls,
            addresses=addresses,
            listeners=LISTENERS,
            labels={"istio.io/waypoint-for": waypoint_for},
            annotations=annotations,
        )
    )


def pod(name: str = "pod1", labels: Mapping[str, str] | None = None) -> str:
    """A pod of ns1, running without a Ready condition (its Workload is UNHEALTHY)."""
    return yaml_text(builders.pod("ns1", name, "10.0.0.1", labels=labels, ready=None))


def hostname_address(name: str = "waypoint", namespace: str = "ns1") -> wl.GatewayAddress:
    return wl.GatewayAddress(
        hostname=wl.NamespacedHostname(
            namespace=namespace, hostname=f"{name}.{namespace}.svc.cluster.local"
        ),
        hbone_mtls_port=15008,
    )


UID = "cluster0//Pod/ns1/pod1"
USE_WAYPOINT = {"istio.io/use-waypoint": "waypoint"}
NAMESPACE_WAYPOINT = yaml_text(builders.namespace("ns1", labels=USE_WAYPOINT))
"""ns1 bound to its waypoint by namespace label."""


def test_pod_label_binds_an_uncaptured_pod() -> None:
    output = translate(gateway() + pod(labels=USE_WAYPOINT))
    assert_proto(
        output.workload(UID),
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.UNHEALTHY, waypoint=hostname_address()
        ),
    )


def test_ip_only_waypoint_address_carries_the_local_network() -> None:
    output = translate(
        gateway(addresses=[builders.ip_address("10.96.0.50")]) + pod(labels=USE_WAYPOINT) + NETWORK
    )
    assert_proto(
        output.workload(UID).waypoint,
        wl.GatewayAddress(
            address=wl.NetworkAddress(network="net1", address=ip("10.96.0.50")),
            hbone_mtls_port=15008,
        ),
    )


def test_waypoint_instances_never_get_a_waypoint() -> None:
    output = translate(
        gateway()
        + pod("wp-pod", {"gateway.networking.k8s.io/gateway-name": "waypoint"})
        + NAMESPACE_WAYPOINT
    )
    assert not output.workload("cluster0//Pod/ns1/wp-pod").HasField("waypoint")


def test_service_only_waypoint_from_namespace_binds_services_not_pods() -> None:
    output = translate(
        gateway(waypoint_for="service")
        + pod(labels={"app": "a"})
        + NAMESPACE_WAYPOINT
        + yaml_text(
            builders.service("ns1", "svc1", "10.96.0.1", [{"port": 80}], selector={"app": "a"})
        )
    )
    assert not output.workload(UID).HasField("waypoint")
    assert_proto(output.service("ns1/svc1.ns1.svc.cluster.local").waypoint, hostname_address())


def test_cross_namespace_waypoint_with_allowed_routes_all() -> None:
    output = translate(
        gateway(namespace="infra")
        + pod(labels={**USE_WAYPOINT, "istio.io/use-waypoint-namespace": "infra"})
    )
    assert_proto(output.workload(UID).waypoint, hostname_address(namespace="infra"))


def test_object_label_pointing_at_missing_waypoint_means_none() -> None:
    output = translate(
        gateway() + pod(labels={"istio.io/use-waypoint": "missing"}) + NAMESPACE_WAYPOINT
    )
    assert not output.workload(UID).HasField("waypoint")


def test_gateway_without_address_is_not_a_waypoint_yet() -> None:
    output = translate(gateway(addresses=[]) + pod(labels=USE_WAYPOINT))
    assert not output.workload(UID).HasField("waypoint")


def test_sandwich_gateway_pods_get_application_tunnel_and_hbone() -> None:
    output = translate(
        gateway(
            "ingress",
            cls="istio",
            waypoint_for="service",
            annotations={"ambient.istio.io/waypoint-inbound-binding": "PROXY/15088"},
        )
        + pod(
            "ingress-pod",
            {
                "gateway.networking.k8s.io/gateway-name": "ingress",
                "istio.io/dataplane-mode": "ambient",
            },
        )
    )
    assert_proto(
        output.workload("cluster0//Pod/ns1/ingress-pod"),
        pod_workload(
            "ingress-pod",
            addresses=[ip("10.0.0.1")],
            status=wl.UNHEALTHY,
            tunnel_protocol=wl.HBONE,
            application_tunnel=wl.ApplicationTunnel(
                protocol=wl.ApplicationTunnel.PROXY, port=15088
            ),
        ),
    )


def test_workload_entry_and_service_entry_endpoint_bind_by_their_labels() -> None:
    output = translate(
        gateway()
        + """
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm, namespace: ns1}
spec: {address: 192.168.0.9, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: [se.example.com]
  resolution: STATIC
  ports: [{name: tcp, number: 80, protocol: TCP}]
  endpoints:
  - {address: 1.1.1.1, labels: {istio.io/use-waypoint: waypoint}}
  - {address: 2.2.2.2}
"""
    )
    assert_proto(
        output.workload("cluster0/networking.istio.io/WorkloadEntry/ns1/vm").waypoint,
        hostname_address(),
    )
    prefix = "cluster0/networking.istio.io/ServiceEntry/ns1/se/"
    assert_proto(output.workload(prefix + "1.1.1.1").waypoint, hostname_address())
    assert not output.workload(prefix + "2.2.2.2").HasField("waypoint")
    # The ServiceEntry itself carries no use-waypoint label: no service waypoint.
    assert not output.service("ns1/se.example.com").HasField("waypoint")
