"""Pod, WorkloadEntry, ServiceEntry-endpoint and EndpointSlice Workloads, whole messages.

Modelled on upstream TestPodWorkloads, TestWorkloadEntryWorkloads,
TestServiceEntryWorkloads, TestEndpointSliceWorkloads,
TestAmbientIndex_NetworkAndClusterIDs and TestPodLifecycleWorkloadGates
(ambient-index §2), with our own fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests import builders
from tests.builders import IPs, yaml_text
from tests.translate.ztunnel.fixtures import (
    CONFIG,
    NETWORK,
    assert_proto,
    ip,
    pod_workload,
    translate,
)
from xds.model import MeshConfig
from xds.proto.istio.workload import workload_pb2 as wl


def pod(name: str = "pod1", ip: IPs | None = "10.0.0.1", **fields: Any) -> str:
    """A pod of ns1 as YAML, running and ready unless ``fields`` (those of
    ``tests.builders.pod``) say otherwise."""
    return yaml_text(builders.pod("ns1", name, ip, **fields))


def service(namespace: str = "ns1") -> str:
    """svc1, selecting app=a, with a numeric and a named target port."""
    ports = [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "grpc", "port": 90, "targetPort": "grpc-port"},
    ]
    return yaml_text(builders.service(namespace, "svc1", "10.96.0.1", ports, selector={"app": "a"}))


SERVICE = service()
AMBIENT_NAMESPACE = yaml_text(
    builders.namespace("ns1", labels={"istio.io/dataplane-mode": "ambient"})
)


@dataclass
class Case:
    id: str
    manifests: str
    uid: str
    expected: wl.Workload | None
    config: MeshConfig = CONFIG


CASES = [
    Case(
        "running ready pod",
        pod(),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY),
    ),
    Case(
        "pending pod with an IP is published unhealthy",
        pod(phase="Pending", ready=None),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.UNHEALTHY),
    ),
    Case(
        "running pod not ready",
        pod(ready=None),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.UNHEALTHY),
    ),
    Case(
        "terminating pod is unhealthy",
        pod(deleted="2026-01-01T00:00:00Z"),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.UNHEALTHY),
    ),
    Case(
        "pod without IP is not published",
        pod(ip=None, phase="Pending", ready=None),
        "cluster0//Pod/ns1/pod1",
        None,
    ),
    Case(
        "succeeded pod is not published",
        pod(phase="Succeeded", ready=None),
        "cluster0//Pod/ns1/pod1",
        None,
    ),
    Case(
        "dual-stack pod keeps address order and raw sizes",
        pod(ip=["fd00::1", "10.0.0.1"], ready=None),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("fd00::1"), ip("10.0.0.1")], status=wl.UNHEALTHY),
    ),
    Case(
        "pod from replicaset is named after its deployment",
        pod(
            "web-5d9c8b7f6-abcde",
            generate_name="web-5d9c8b7f6-",
            labels={"pod-template-hash": "5d9c8b7f6"},
            owners=[
                {
                    "kind": "ReplicaSet",
                    "name": "web-5d9c8b7f6",
                    "controller": True,
                    "apiVersion": "apps/v1",
                }
            ],
        ),
        "cluster0//Pod/ns1/web-5d9c8b7f6-abcde",
        pod_workload(
            "web-5d9c8b7f6-abcde",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            workload_name="web",
            canonical_name="web",
        ),
    ),
    Case(
        "pod from cronjob job is named after the cronjob",
        pod(
            "backup-28391230-x7k2p",
            generate_name="backup-28391230-",
            owners=[{"kind": "Job", "name": "backup-28391230", "controller": True}],
        ),
        "cluster0//Pod/ns1/backup-28391230-x7k2p",
        pod_workload(
            "backup-28391230-x7k2p",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            workload_name="backup",
            canonical_name="backup",
        ),
    ),
    Case(
        "canonical labels and workload-name label",
        pod(
            labels={
                "app": "fallback",
                "app.kubernetes.io/name": "appname",
                "version": "v9",
                "service.istio.io/canonical-revision": "v2",
                "service.istio.io/workload-name": "wl",
            }
        ),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            workload_name="wl",
            canonical_name="appname",
            canonical_revision="v2",
        ),
    ),
    Case(
        "service account, node and locality from the node",
        pod(service_account="sa1", node="node1")
        + yaml_text(builders.node("node1", region="r1", zone="z1", subzone="s1")),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            service_account="sa1",
            node="node1",
            locality=wl.Locality(region="r1", zone="z1", subzone="s1"),
        ),
    ),
    Case(
        "host network pod",
        pod(host_network=True),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY, network_mode=wl.HOST_NETWORK
        ),
    ),
    Case(
        "redirection annotation enables HBONE",
        pod(annotations={"ambient.istio.io/redirection": "enabled"}),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY, tunnel_protocol=wl.HBONE
        ),
    ),
    Case(
        "pending redirection annotation wins over the namespace label",
        pod(annotations={"ambient.istio.io/redirection": "pending"}) + AMBIENT_NAMESPACE,
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY),
    ),
    Case(
        "ambient namespace enrolls the pod (no CNI annotation)",
        pod() + AMBIENT_NAMESPACE,
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY, tunnel_protocol=wl.HBONE
        ),
    ),
    Case(
        "pod opts out of an ambient namespace",
        pod(labels={"istio.io/dataplane-mode": "none"}) + AMBIENT_NAMESPACE,
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY),
    ),
    Case(
        "host network pods are never enrolled",
        pod(labels={"istio.io/dataplane-mode": "ambient"}, host_network=True),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY, network_mode=wl.HOST_NETWORK
        ),
    ),
    Case(
        "tunnel label gives native HBONE",
        pod(labels={"networking.istio.io/tunnel": "foo,http"}),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            tunnel_protocol=wl.HBONE,
            native_tunnel=True,
        ),
    ),
    Case(
        "selected by a service: named target port resolved, missing one left out",
        SERVICE
        + pod(
            labels={"app": "a"},
            containers=[{"name": "c", "ports": [{"name": "other", "containerPort": 1}]}],
        ),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            canonical_name="a",
            services={
                "ns1/svc1.ns1.svc.cluster.local": wl.PortList(
                    ports=[wl.Port(service_port=80, target_port=8080)]
                )
            },
        ),
    ),
    Case(
        "named target port found on a native sidecar",
        SERVICE
        + pod(
            labels={"app": "a"},
            init_containers=[
                {
                    "name": "s",
                    "restartPolicy": "Always",
                    "ports": [{"name": "grpc-port", "containerPort": 9090}],
                }
            ],
        ),
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            canonical_name="a",
            services={
                "ns1/svc1.ns1.svc.cluster.local": wl.PortList(
                    ports=[
                        wl.Port(service_port=80, target_port=8080),
                        wl.Port(service_port=90, target_port=9090),
                    ]
                )
            },
        ),
    ),
    Case(
        "service in another namespace does not select the pod",
        service("ns2") + pod(labels={"app": "a"}),
        "cluster0//Pod/ns1/pod1",
        pod_workload("pod1", addresses=[ip("10.0.0.1")], status=wl.HEALTHY, canonical_name="a"),
    ),
    Case(
        "service entry selecting pods maps ports by name",
        pod(
            labels={"app": "a"},
            containers=[{"name": "c", "ports": [{"name": "http", "containerPort": 8081}]}],
        )
        + """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: [se.example.com]
  addresses: [240.0.0.1]
  resolution: STATIC
  workloadSelector: {labels: {app: a}}
  ports:
  - {name: http, number: 80, protocol: HTTP}
  - {name: tcp, number: 81, protocol: TCP, targetPort: 9001}
""",
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            canonical_name="a",
            services={
                "ns1/se.example.com": wl.PortList(
                    ports=[
                        wl.Port(service_port=80, target_port=8081),
                        wl.Port(service_port=81, target_port=9001),
                    ]
                )
            },
        ),
    ),
    Case(
        "selectorless service attaches through an EndpointSlice targetRef",
        pod()
        + """
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: ns1}
spec:
  clusterIP: 10.96.0.9
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-abc, namespace: ns1, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  targetRef: {kind: Pod, name: pod1, namespace: ns1}
ports: [{name: http, port: 80, protocol: TCP}]
""",
        "cluster0//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            services={
                "ns1/manual.ns1.svc.cluster.local": wl.PortList(
                    ports=[wl.Port(service_port=80, target_port=80)]
                )
            },
        ),
    ),
    Case(
        "network from the root namespace, trust domain and cluster id from the config",
        pod() + NETWORK,
        "c2//Pod/ns1/pod1",
        pod_workload(
            "pod1",
            addresses=[ip("10.0.0.1")],
            status=wl.HEALTHY,
            network="net1",
            uid="c2//Pod/ns1/pod1",
            cluster_id="c2",
            trust_domain="example.org",
        ),
        MeshConfig(cluster_id="c2", trust_domain="example.org"),
    ),
    Case(
        "workload entry with service, spec labels and weight",
        SERVICE
        + """
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1, namespace: ns1, labels: {version: v1}}
spec:
  address: 192.168.1.5
  labels: {app: a}
  serviceAccount: vm-sa
  network: vm-net
  locality: r1/z1
  weight: 3
  ports: {http: 8888, grpc-port: 9999}
""",
        "cluster0/networking.istio.io/WorkloadEntry/ns1/vm1",
        wl.Workload(
            uid="cluster0/networking.istio.io/WorkloadEntry/ns1/vm1",
            name="vm1",
            namespace="ns1",
            addresses=[ip("192.168.1.5")],
            network="vm-net",
            service_account="vm-sa",
            cluster_id="cluster0",
            status=wl.HEALTHY,
            locality=wl.Locality(region="r1", zone="z1"),
            capacity={"value": 3},
            workload_type=wl.POD,
            workload_name="vm1",
            canonical_name="a",
            canonical_revision="v1",
            services={
                "ns1/svc1.ns1.svc.cluster.local": wl.PortList(
                    ports=[
                        wl.Port(service_port=80, target_port=8888),
                        wl.Port(service_port=90, target_port=9999),
                    ]
                )
            },
        ),
    ),
    Case(
        "workload entry with a hostname address and tunnel label",
        """
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm2
  namespace: ns1
  labels: {networking.istio.io/tunnel: http}
  annotations: {istio.io/autoRegistrationGroup: group1}
spec: {address: vm2.example.com}
""",
        "cluster0/networking.istio.io/WorkloadEntry/ns1/vm2",
        wl.Workload(
            uid="cluster0/networking.istio.io/WorkloadEntry/ns1/vm2",
            name="vm2",
            namespace="ns1",
            hostname="vm2.example.com",
            cluster_id="cluster0",
            status=wl.HEALTHY,
            workload_type=wl.POD,
            workload_name="group1",
            canonical_name="group1",
            canonical_revision="latest",
            tunnel_protocol=wl.HBONE,
            native_tunnel=True,
        ),
    ),
    Case(
        "service entry inline endpoint",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: ns1, labels: {app: ext-app}}
spec:
  hosts: [ext.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80, protocol: HTTP}]
  endpoints:
  - {address: 1.1.1.1, ports: {http: 8080}, serviceAccount: ext-sa, weight: 2,
     locality: r/z/s}
""",
        "cluster0/networking.istio.io/ServiceEntry/ns1/ext/1.1.1.1",
        wl.Workload(
            uid="cluster0/networking.istio.io/ServiceEntry/ns1/ext/1.1.1.1",
            name="ext",
            namespace="ns1",
            addresses=[ip("1.1.1.1")],
            service_account="ext-sa",
            cluster_id="cluster0",
            status=wl.HEALTHY,
            capacity={"value": 2},
            locality=wl.Locality(region="r", zone="z", subzone="s"),
            workload_type=wl.POD,
            workload_name="ext",
            canonical_name="ext-app",
            canonical_revision="latest",
            services={
                "ns1/ext.example.com": wl.PortList(
                    ports=[wl.Port(service_port=80, target_port=8080)]
                )
            },
        ),
    ),
    Case(
        "DNS service entry without endpoints resolves each host",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: ns1}
spec:
  hosts: [a.example.com, b.example.com]
  resolution: DNS
  ports: [{name: https, number: 443, protocol: TLS}]
""",
        "cluster0/networking.istio.io/ServiceEntry/ns1/dns/b.example.com",
        wl.Workload(
            uid="cluster0/networking.istio.io/ServiceEntry/ns1/dns/b.example.com",
            name="dns",
            namespace="ns1",
            hostname="b.example.com",
            cluster_id="cluster0",
            status=wl.HEALTHY,
            workload_type=wl.POD,
            workload_name="dns",
            canonical_name="dns",
            canonical_revision="latest",
            services={
                "ns1/b.example.com": wl.PortList(ports=[wl.Port(service_port=443, target_port=443)])
            },
        ),
    ),
    Case(
        "endpoint slice endpoint without a pod",
        """
---
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec:
  clusterIP: 10.96.0.1
  ports: [{name: https, port: 443, targetPort: 6443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: kubernetes, namespace: default,
           labels: {kubernetes.io/service-name: kubernetes}}
addressType: IPv4
endpoints:
- addresses: [172.18.0.2]
  conditions: {ready: true}
ports: [{name: https, port: 6443, protocol: TCP}]
""",
        "cluster0/discovery.k8s.io/EndpointSlice/default/kubernetes/172.18.0.2",
        wl.Workload(
            uid="cluster0/discovery.k8s.io/EndpointSlice/default/kubernetes/172.18.0.2",
            name="kubernetes",
            namespace="default",
            addresses=[ip("172.18.0.2")],
            cluster_id="cluster0",
            status=wl.HEALTHY,
            network_mode=wl.HOST_NETWORK,
            services={
                "default/kubernetes.default.svc.cluster.local": wl.PortList(
                    ports=[wl.Port(service_port=443, target_port=6443)]
                )
            },
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_workload(case: Case) -> None:
    output = translate(case.manifests, case.config)
    if case.expected is None:
        assert case.uid not in output.addresses
        assert output.workload_names() == set()
        return
    assert_proto(output.workload(case.uid), case.expected)


def test_workload_aliases_are_network_and_ip() -> None:
    output = translate(pod(ip=["10.0.0.1", "fd00::1"], ready=None) + NETWORK)
    assert output.addresses["cluster0//Pod/ns1/pod1"].aliases == ("net1/10.0.0.1", "net1/fd00::1")


def test_selectorless_slice_without_target_ref_does_not_attach_the_pod() -> None:
    output = translate(
        pod()
        + """
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: ns1}
spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-abc, namespace: ns1, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: http, port: 80, protocol: TCP}]
"""
    )
    assert not output.workload("cluster0//Pod/ns1/pod1").services
    slice_workload = output.workload(
        "cluster0/discovery.k8s.io/EndpointSlice/ns1/manual-abc/10.0.0.1"
    )
    assert list(slice_workload.services) == ["ns1/manual.ns1.svc.cluster.local"]


@pytest.mark.parametrize(
    ("manifests", "groups"),
    [
        (pod(node="node-a"), ("node:node-a",)),
        (
            pod(labels={"app": "a"}, node="node-a") + SERVICE,
            ("node:node-a", "ns1/svc1.ns1.svc.cluster.local"),
        ),
        (pod(labels={"app": "a"}) + SERVICE, ("ns1/svc1.ns1.svc.cluster.local",)),
    ],
)
def test_workloads_are_grouped_by_node_and_service(manifests: str, groups: tuple[str, ...]) -> None:
    # Why: an on-demand ztunnel gets its node's workloads unasked, and a Service's
    # workloads with the Service (tests/serving/test_delta_session.py).
    output = translate(manifests)
    assert output.addresses["cluster0//Pod/ns1/pod1"].groups == groups
    for name in output.service_names():
        assert output.addresses[name].groups == ()
