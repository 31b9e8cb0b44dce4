"""Kubernetes Service and ServiceEntry → istio.workload.Service, whole messages.

Modelled on upstream TestServiceServices, TestServiceEntryServices,
TestSelectWorkloadServices / Test_setCanonical, TestEmptyVIPsExcluded,
TestAmbientIndex_ServiceOverlap and TestIngressUseWaypointFromLabels
(ambient-index §3), with our own fixtures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests import builders
from tests.builders import IPs, Manifest, yaml_text
from tests.translate.ztunnel.fixtures import assert_proto, ip, translate
from xds.proto.istio.workload import workload_pb2 as wl

LB = wl.LoadBalancing
SAME_ZONE = LB(routing_preference=[LB.NETWORK, LB.REGION, LB.ZONE], mode=LB.FAILOVER)
SAME_NODE = LB(
    routing_preference=[LB.NETWORK, LB.REGION, LB.ZONE, LB.SUBZONE, LB.NODE], mode=LB.FAILOVER
)


def service(
    ip: IPs | None = "10.96.0.1", ports: Sequence[Manifest] | None = None, **fields: Any
) -> str:
    """svc1 of ns1 as YAML; ``fields`` as for ``tests.builders.service``."""
    return yaml_text(builders.service("ns1", "svc1", ip, ports, **fields))


def kube(**fields: object) -> wl.Service:
    base: dict[str, object] = {
        "name": "svc1",
        "namespace": "ns1",
        "hostname": "svc1.ns1.svc.cluster.local",
        "addresses": [wl.NetworkAddress(address=ip("10.96.0.1"))],
        "canonical": True,
    }
    base.update(fields)
    return wl.Service(**base)  # type: ignore[arg-type]


NAMESPACE_CLOSE = yaml_text(
    builders.namespace(
        "ns1", annotations={"networking.istio.io/traffic-distribution": "PreferClose"}
    )
)


def waypoint(name: str = "waypoint") -> str:
    """A waypoint in ns1 with both an IP and a hostname address."""
    addresses = [
        builders.ip_address("10.96.0.50"),
        builders.hostname_address(f"{name}.ns1.svc.cluster.local"),
    ]
    return yaml_text(builders.gateway("ns1", name, addresses=addresses))


WAYPOINT = waypoint()
WAYPOINT_ADDRESS = wl.GatewayAddress(
    hostname=wl.NamespacedHostname(namespace="ns1", hostname="waypoint.ns1.svc.cluster.local"),
    hbone_mtls_port=15008,
)


@dataclass
class Case:
    id: str
    manifests: str
    name: str
    expected: wl.Service | None


CASES = [
    Case(
        "ports, target ports and inferred protocols",
        service(
            ports=[
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "tcp-db", "port": 81},
                {"name": "grpc", "port": 82, "targetPort": "named"},
                {"name": "foo", "port": 83},
                {"port": 3306},
                {"name": "http-alt", "port": 84, "appProtocol": "kubernetes.io/h2c"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "https-web", "port": 443},
            ]
        ),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(
            ports=[
                wl.Port(service_port=80, target_port=8080, app_protocol=wl.HTTP11),
                wl.Port(service_port=81, target_port=81, app_protocol=wl.TCP),
                wl.Port(service_port=82, target_port=0, app_protocol=wl.GRPC),
                wl.Port(service_port=83, target_port=83, app_protocol=wl.UNKNOWN),
                wl.Port(service_port=3306, target_port=3306, app_protocol=wl.TCP),
                wl.Port(service_port=84, target_port=84, app_protocol=wl.HTTP2),
                wl.Port(service_port=53, target_port=53, app_protocol=wl.UNKNOWN),
                wl.Port(service_port=443, target_port=443, app_protocol=wl.TLS),
            ]
        ),
    ),
    Case(
        "headless service has no VIP",
        service("None", [{"port": 80}]),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(addresses=[], ports=[wl.Port(service_port=80, target_port=80)]),
    ),
    Case(
        "external name service is not sent",
        service(None, spec={"type": "ExternalName", "externalName": "example.com"}),
        "ns1/svc1.ns1.svc.cluster.local",
        None,
    ),
    Case(
        "dual stack VIPs",
        service(["10.96.0.1", "fd00::1"], spec={"ipFamilies": ["IPv4", "IPv6"]}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(
            addresses=[
                wl.NetworkAddress(address=ip("10.96.0.1")),
                wl.NetworkAddress(address=ip("fd00::1")),
            ],
            ip_families=wl.DUAL,
        ),
    ),
    Case(
        "single family",
        service(spec={"ipFamilies": ["IPv4"]}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(ip_families=wl.IPV4_ONLY),
    ),
    Case(
        "internal traffic policy local",
        service(spec={"internalTrafficPolicy": "Local", "trafficDistribution": "PreferClose"}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(load_balancing=LB(routing_preference=[LB.NODE], mode=LB.STRICT)),
    ),
    Case(
        "traffic distribution from spec",
        service(spec={"trafficDistribution": "PreferClose"}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(load_balancing=SAME_ZONE),
    ),
    Case(
        "traffic distribution from service annotation",
        service(annotations={"networking.istio.io/traffic-distribution": "PreferSameNode"}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(load_balancing=SAME_NODE),
    ),
    Case(
        "unknown spec value falls through to the namespace annotation",
        service(spec={"trafficDistribution": "Bogus"}) + NAMESPACE_CLOSE,
        "ns1/svc1.ns1.svc.cluster.local",
        kube(load_balancing=SAME_ZONE),
    ),
    Case(
        "unknown service annotation means any and stops the search",
        service(annotations={"networking.istio.io/traffic-distribution": "x"}) + NAMESPACE_CLOSE,
        "ns1/svc1.ns1.svc.cluster.local",
        kube(),
    ),
    Case(
        "publish not ready addresses alone",
        service(spec={"publishNotReadyAddresses": True}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(load_balancing=LB(health_policy=LB.ALLOW_ALL)),
    ),
    Case(
        "publish not ready addresses with distribution",
        service(spec={"publishNotReadyAddresses": True, "trafficDistribution": "PreferSameZone"}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(
            load_balancing=LB(
                routing_preference=[LB.NETWORK, LB.REGION, LB.ZONE],
                mode=LB.FAILOVER,
                health_policy=LB.ALLOW_ALL,
            )
        ),
    ),
    Case(
        "namespace waypoint binds the service by hostname",
        service()
        + WAYPOINT
        + yaml_text(builders.namespace("ns1", labels={"istio.io/use-waypoint": "waypoint"})),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(waypoint=WAYPOINT_ADDRESS),
    ),
    Case(
        "ingress-use-waypoint only with a bound waypoint",
        service(
            labels={"istio.io/use-waypoint": "waypoint", "istio.io/ingress-use-waypoint": "true"}
        )
        + WAYPOINT,
        "ns1/svc1.ns1.svc.cluster.local",
        kube(waypoint=WAYPOINT_ADDRESS, ingress_use_waypoint=True),
    ),
    Case(
        "waypoint not ready leaves the service without waypoint",
        service(labels={"istio.io/use-waypoint": "waypoint"}),
        "ns1/svc1.ns1.svc.cluster.local",
        kube(),
    ),
    Case(
        "service entry with CIDR, single IP and subject alt names",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: [se.example.com]
  addresses: [10.1.2.3/16, 192.168.0.1]
  resolution: STATIC
  subjectAltNames: [spiffe://td/ns/x/sa/y]
  ports: [{name: http, number: 80, protocol: HTTP}, {name: db, number: 5432, targetPort: 15432}]
""",
        "ns1/se.example.com",
        wl.Service(
            name="se",
            namespace="ns1",
            hostname="se.example.com",
            addresses=[
                wl.NetworkAddress(address=ip("10.1.0.0"), length=16),
                wl.NetworkAddress(address=ip("192.168.0.1")),
            ],
            ports=[
                wl.Port(service_port=80, target_port=80, app_protocol=wl.HTTP11),
                wl.Port(service_port=5432, target_port=15432, app_protocol=wl.UNKNOWN),
            ],
            subject_alt_names=["spiffe://td/ns/x/sa/y"],
            canonical=True,
        ),
    ),
    Case(
        "service entry with resolution NONE passes through",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: [passthrough.example.com]
  ports: [{name: tls, number: 443, protocol: TLS}]
""",
        "ns1/passthrough.example.com",
        wl.Service(
            name="se",
            namespace="ns1",
            hostname="passthrough.example.com",
            ports=[wl.Port(service_port=443, target_port=443, app_protocol=wl.TLS)],
            load_balancing=LB(mode=LB.PASSTHROUGH, health_policy=LB.ALLOW_ALL),
            canonical=True,
        ),
    ),
    Case(
        "service entry uses auto-allocated address for its host",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
  namespace: ns1
  annotations: {networking.istio.io/traffic-distribution: PreferClose}
spec:
  hosts: [auto.example.com]
  resolution: DNS
  ports: [{name: http, number: 80, protocol: HTTP}]
status:
  addresses: [{host: auto.example.com, value: 240.240.0.1}, {host: other, value: 240.240.0.2}]
""",
        "ns1/auto.example.com",
        wl.Service(
            name="se",
            namespace="ns1",
            hostname="auto.example.com",
            addresses=[wl.NetworkAddress(address=ip("240.240.0.1"))],
            ports=[wl.Port(service_port=80, target_port=80, app_protocol=wl.HTTP11)],
            load_balancing=SAME_ZONE,
            canonical=True,
        ),
    ),
    Case(
        "wildcard host with DNS resolution ignores auto-allocated addresses",
        """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: ['*.wild.example.com']
  resolution: DNS
  ports: [{name: http, number: 80, protocol: HTTP}]
status:
  addresses: [{host: '*.wild.example.com', value: 240.240.0.1}]
""",
        "ns1/*.wild.example.com",
        wl.Service(
            name="se",
            namespace="ns1",
            hostname="*.wild.example.com",
            ports=[wl.Port(service_port=80, target_port=80, app_protocol=wl.HTTP11)],
            canonical=True,
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_service(case: Case) -> None:
    output = translate(case.manifests)
    if case.expected is None:
        assert output.service_names() == set()
        return
    assert_proto(output.service(case.name), case.expected)


def _entry(name: str, namespace: str, created: str, host: str = "shared.example.com") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: '{created}'}}
spec:
  hosts: [{host}]
  addresses: [240.0.0.{len(name)}]
  resolution: STATIC
  ports: [{{name: tcp, number: 9000, protocol: TCP}}]
"""


def test_oldest_service_entry_wins_per_namespace_and_is_canonical() -> None:
    output = translate(
        _entry("young", "ns1", "2026-02-01T00:00:00Z")
        + _entry("old", "ns1", "2026-01-01T00:00:00Z")
        + _entry("other", "ns2", "2026-01-15T00:00:00Z")
    )
    assert output.service_names() == {"ns1/shared.example.com", "ns2/shared.example.com"}
    winner = output.service("ns1/shared.example.com")
    assert winner.name == "old" and winner.canonical
    elsewhere = output.service("ns2/shared.example.com")
    assert elsewhere.name == "other" and not elsewhere.canonical


def test_kubernetes_service_beats_older_service_entry_for_its_hostname() -> None:
    manifests = (
        _entry("camper", "ns1", "2020-01-01T00:00:00Z", host="svc1.ns1.svc.cluster.local")
        + service()
    )
    output = translate(manifests)
    assert output.service_names() == {"ns1/svc1.ns1.svc.cluster.local"}
    assert output.service("ns1/svc1.ns1.svc.cluster.local").name == "svc1"


def test_service_aliases_carry_prefix_length_for_cidrs() -> None:
    output = translate("""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: ns1}
spec:
  hosts: [se.example.com]
  addresses: [10.1.0.0/16, 192.168.0.1]
  resolution: STATIC
""")
    assert output.addresses["ns1/se.example.com"].aliases == ("/10.1.0.0/16", "/192.168.0.1")


def test_canary_waypoint_gives_weighted_waypoints() -> None:
    output = translate(
        service(
            labels={"istio.io/use-waypoint": "waypoint", "istio.io/use-waypoint-canary": "canary"},
            annotations={"istio.io/use-waypoint-canary-weight": "10"},
        )
        + WAYPOINT
        + waypoint("canary")
    )
    canary_address = wl.GatewayAddress(
        hostname=wl.NamespacedHostname(namespace="ns1", hostname="canary.ns1.svc.cluster.local"),
        hbone_mtls_port=15008,
    )
    assert_proto(
        output.service("ns1/svc1.ns1.svc.cluster.local"),
        kube(
            waypoint=WAYPOINT_ADDRESS,
            weighted_waypoints=[
                wl.WeightedWaypoint(destination=WAYPOINT_ADDRESS, weight=90),
                wl.WeightedWaypoint(destination=canary_address, weight=10),
            ],
        ),
    )
