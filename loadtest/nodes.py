"""Who the simulated proxies say they are: node ids and metadata as the real ones send them.

ztunnel: ``ztunnel~<INSTANCE_IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local``
with metadata NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME and CLUSTER_ID (ztunnel.md
section 1.4); one per Node of the mesh, in node order. Waypoints claim to be the
waypoint pods of the mesh (so their identity checks pass on the TLS port),
with Envoy's metadata: NAME, NAMESPACE, LABELS, SERVICE_ACCOUNT, CLUSTER_ID,
ISTIO_VERSION.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from loadtest.churn import node_audience
from loadtest.mesh import WaypointPod
from loadtest.proxies import ProxySpec
from xds.resources import ZTUNNEL_SCOPE, waypoint_scope

CLUSTER_ID = "Kubernetes"
ISTIO_VERSION = "1.28.0"
ZTUNNEL_ACCOUNT = "istio-system/ztunnel"
_NODE_NETWORK = int(IPv4Address("172.16.0.0"))


def ztunnels(count: int, nodes: int, *, on_demand: bool = False) -> list[ProxySpec]:
    """``on_demand``: as ztunnel with ``XDS_ON_DEMAND=true`` (its node's pods arrive
    unasked; it looks nothing else up)."""
    specs = []
    for index in range(count):
        ip = str(IPv4Address(_NODE_NETWORK + index + 1))
        pod = f"ztunnel-{index}"
        node = f"node-{index % max(nodes, 1)}"
        specs.append(
            ProxySpec(
                kind="ztunnel",
                node_id=f"ztunnel~{ip}~{pod}.istio-system~istio-system.svc.cluster.local",
                metadata={
                    "NAME": pod,
                    "NAMESPACE": "istio-system",
                    "INSTANCE_IPS": ip,
                    "NODE_NAME": node,
                    "CLUSTER_ID": CLUSTER_ID,
                },
                audience=ZTUNNEL_SCOPE,
                account=ZTUNNEL_ACCOUNT,
                also=(node_audience(node),) if on_demand else (),
                on_demand=on_demand,
            )
        )
    return specs


def waypoints(count: int, pods: list[WaypointPod], sotw: int = 0) -> list[ProxySpec]:
    """``count`` waypoint proxies over the mesh's waypoint pods (replicas if count > pods);
    the first ``sotw`` use state-of-the-world ADS."""
    specs: list[ProxySpec] = []
    for index in range(count if pods else 0):
        pod = pods[index % len(pods)]
        replica = index // len(pods)
        name = pod.pod_name if replica == 0 else f"{pod.pod_name}-r{replica}"
        specs.append(
            ProxySpec(
                kind="waypoint",
                node_id=f"waypoint~{pod.ip}~{name}.{pod.namespace}~{pod.namespace}.svc.cluster.local",
                metadata={
                    "NAME": name,
                    "NAMESPACE": pod.namespace,
                    "LABELS": pod.labels,
                    "SERVICE_ACCOUNT": pod.service_account,
                    "CLUSTER_ID": CLUSTER_ID,
                    "ISTIO_VERSION": ISTIO_VERSION,
                },
                audience=waypoint_scope(pod.namespace, pod.gateway),
                account=f"{pod.namespace}/{pod.service_account}",
                delta=index >= sotw,
            )
        )
    return specs
