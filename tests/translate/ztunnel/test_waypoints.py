"""Waypoint attachment as ztunnel sees it: Workload.waypoint, Service.waypoint,
application_tunnel. Modelled on upstream TestAmbientIndex_WaypointForWorkloadTraffic,
TestAmbientIndex_WaypointAddressAddedToWorkloads, TestAmbientIndex_WaypointInboundBinding,
TestAmbientIndex_WaypointConfiguredOnlyWhenReady and TestUpdateWaypointForWorkload.
"""

from __future__ import annotations

from tests.translate.ztunnel.fixtures import assert_proto, ip, pod_workload, translate
from xds.proto.istio.workload import workload_pb2 as wl


def gateway(
    name: str = "waypoint",
    namespace: str = "ns1",
    *,
    waypoint_for: str = "all",
    cls: str = "istio-waypoint",
    status: str = "",
    extra: str = "",
) -> str:
    status = status or f"[{{type: Hostname, value: {name}.{namespace}.svc.cluster.local}}]"
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{istio.io/waypoint-for: {waypoint_for}}}
{extra}
spec:
  gatewayClassName: {cls}
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
    allowedRoutes: {{namespaces: {{from: All}}}}
  - name: proxy
    port: 15088
    protocol: istio.io/PROXY
status:
  addresses: {status}
"""


def pod(
    name: str = "pod1", labels: str = "{}", namespace: str = "ns1", ip_address: str = "10.0.0.1"
) -> str:
    return f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}
status: {{phase: Running, podIP: {ip_address}}}
"""


def hostname_address(name: str = "waypoint", namespace: str = "ns1") -> wl.GatewayAddress:
    return wl.GatewayAddress(
        hostname=wl.NamespacedHostname(
            namespace=namespace, hostname=f"{name}.{namespace}.svc.cluster.local"
        ),
        hbone_mtls_port=15008,
    )


UID = "cluster0//Pod/ns1/pod1"


def test_pod_label_binds_an_uncaptured_pod() -> None:
    output = translate(gateway() + pod(labels="{istio.io/use-waypoint: waypoint}"))
    assert_proto(
        output.workload(UID),
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.UNHEALTHY, waypoint=hostname_address()
        ),
    )


def test_ip_only_waypoint_address_carries_the_local_network() -> None:
    output = translate(
        gateway(status="[{type: IPAddress, value: 10.96.0.50}]")
        + pod(labels="{istio.io/use-waypoint: waypoint}")
        + """
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system, labels: {topology.istio.io/network: net1}}
"""
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
        + pod("wp-pod", labels="{gateway.networking.k8s.io/gateway-name: waypoint}")
        + """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio.io/use-waypoint: waypoint}}
"""
    )
    assert not output.workload("cluster0//Pod/ns1/wp-pod").HasField("waypoint")


def test_service_only_waypoint_from_namespace_binds_services_not_pods() -> None:
    output = translate(
        gateway(waypoint_for="service")
        + pod(labels="{app: a}")
        + """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio.io/use-waypoint: waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80}]}
"""
    )
    assert not output.workload(UID).HasField("waypoint")
    assert_proto(output.service("ns1/svc1.ns1.svc.cluster.local").waypoint, hostname_address())


def test_cross_namespace_waypoint_with_allowed_routes_all() -> None:
    output = translate(
        gateway(namespace="infra")
        + pod(labels="{istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: infra}")
    )
    assert_proto(output.workload(UID).waypoint, hostname_address(namespace="infra"))


def test_object_label_pointing_at_missing_waypoint_means_none() -> None:
    output = translate(
        gateway()
        + pod(labels="{istio.io/use-waypoint: missing}")
        + """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio.io/use-waypoint: waypoint}}
"""
    )
    assert not output.workload(UID).HasField("waypoint")


def test_gateway_without_address_is_not_a_waypoint_yet() -> None:
    output = translate(gateway(status="[]") + pod(labels="{istio.io/use-waypoint: waypoint}"))
    assert not output.workload(UID).HasField("waypoint")


def test_sandwich_gateway_pods_get_application_tunnel_and_hbone() -> None:
    output = translate(
        gateway(
            "ingress",
            cls="istio",
            waypoint_for="service",
            extra="  annotations: {ambient.istio.io/waypoint-inbound-binding: PROXY/15088}",
        )
        + pod(
            "ingress-pod",
            labels="{gateway.networking.k8s.io/gateway-name: ingress,"
            " istio.io/dataplane-mode: ambient}",
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
