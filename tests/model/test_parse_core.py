"""Parsing of core kinds: good manifests give the expected fields, bad ones name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address

import pytest
from yaml import safe_load as load

from xds.model import ManifestError, parse_object
from xds.model.core import (
    AddressType,
    ContainerPort,
    EndpointSlice,
    InternalTrafficPolicy,
    IPFamily,
    Namespace,
    Node,
    Pod,
    PodPhase,
    Protocol,
    Secret,
    Service,
    ServiceAccount,
    ServiceType,
    TargetRef,
)
from xds.model.meta import ObjectKey, OwnerReference

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1-5b8f7c9d4-x2k9p
  namespace: bookinfo
  uid: 1f0e
  generateName: reviews-v1-5b8f7c9d4-
  creationTimestamp: "2026-01-02T03:04:05Z"
  labels: {app: reviews, version: v1}
  annotations: {ambient.istio.io/redirection: enabled}
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v1-5b8f7c9d4, controller: true}
spec:
  nodeName: node-a
  serviceAccountName: bookinfo-reviews
  containers:
  - name: reviews
    ports: [{containerPort: 9080, name: http}, {containerPort: 53, protocol: UDP}]
  initContainers:
  - {name: setup, ports: [{containerPort: 1111, name: ignored}]}
  - {name: sidecar, restartPolicy: Always, ports: [{containerPort: 15000, name: admin}]}
status:
  phase: Running
  podIP: 10.244.1.7
  podIPs: [{ip: 10.244.1.7}, {ip: "fd00:10:244::7"}]
  conditions:
  - {type: PodScheduled, status: "True"}
  - {type: Ready, status: "True"}
"""


def test_pod_fields() -> None:
    pod = parse_object(load(POD))
    assert isinstance(pod, Pod)
    assert pod.key == ObjectKey("Pod", "bookinfo", "reviews-v1-5b8f7c9d4-x2k9p")
    assert pod.labels == {"app": "reviews", "version": "v1"}
    assert pod.annotations["ambient.istio.io/redirection"] == "enabled"
    assert pod.meta.uid == "1f0e"
    assert pod.meta.generate_name == "reviews-v1-5b8f7c9d4-"
    assert pod.meta.creation_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert pod.meta.controller == OwnerReference(
        kind="ReplicaSet", name="reviews-v1-5b8f7c9d4", api_version="apps/v1", controller=True
    )
    assert pod.node_name == "node-a"
    assert pod.service_account == "bookinfo-reviews"
    assert pod.phase is PodPhase.RUNNING
    assert pod.pod_ips == (ip_address("10.244.1.7"), ip_address("fd00:10:244::7"))
    assert pod.ready and not pod.terminating and not pod.host_network
    # Regular containers first, then only restartable init containers.
    assert pod.container_ports == (
        ContainerPort(9080, "http"),
        ContainerPort(53, "", Protocol.UDP),
        ContainerPort(15000, "admin"),
    )
    assert pod.container_port_named("http") == ContainerPort(9080, "http")
    assert pod.container_port_named("ignored") is None


def test_pod_defaults_match_the_api_server() -> None:
    pod = parse_object(
        load("""
        apiVersion: v1
        kind: Pod
        metadata: {name: bare}
        status:
          podIP: 10.0.0.9
          conditions: [{type: Ready, status: "False"}]
    """)
    )
    assert isinstance(pod, Pod)
    assert pod.namespace == "default"
    assert pod.service_account == "default"
    assert pod.phase is PodPhase.PENDING
    assert pod.pod_ips == (ip_address("10.0.0.9"),)  # podIP when podIPs is absent
    assert not pod.ready


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-02T03:04:05Z",  # a datetime once YAML has read it
        "'2026-01-02T03:04:05Z'",  # a string
        "'2026-01-02T03:04:05'",  # no zone: taken as UTC
        "2026-01-02 03:04:05",  # YAML's own naive timestamp form
    ],
)
def test_creation_timestamps_are_always_aware(stamp: str) -> None:
    pod = parse_object(
        load(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p, creationTimestamp: {stamp}}}
    """)
    )
    assert pod is not None
    assert pod.meta.creation_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_pod_terminating_and_host_network() -> None:
    pod = parse_object(
        load("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p, namespace: ns, deletionTimestamp: "2026-01-01T00:00:00Z"}
        spec: {hostNetwork: true, serviceAccount: legacy}
    """)
    )
    assert isinstance(pod, Pod)
    assert pod.terminating and pod.host_network
    assert pod.service_account == "legacy"
    assert pod.pod_ips == ()


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {istio.io/use-waypoint: waypoint}}
spec:
  type: ClusterIP
  clusterIP: 10.96.1.1
  clusterIPs: [10.96.1.1, "fd00:96::1"]
  ipFamilies: [IPv4, IPv6]
  selector: {app: reviews}
  internalTrafficPolicy: Local
  trafficDistribution: PreferClose
  publishNotReadyAddresses: true
  ports:
  - {name: http, port: 9080, targetPort: http, appProtocol: http}
  - {name: grpc, port: 9090, targetPort: 19090}
  - {name: dns, port: 53, protocol: UDP}
"""


def test_service_fields() -> None:
    service = parse_object(load(SERVICE))
    assert isinstance(service, Service)
    assert service.type is ServiceType.CLUSTER_IP
    assert service.cluster_ips == (ip_address("10.96.1.1"), ip_address("fd00:96::1"))
    assert not service.headless
    assert service.ip_families == (IPFamily.IPV4, IPFamily.IPV6)
    assert service.selector == {"app": "reviews"}
    assert service.internal_traffic_policy is InternalTrafficPolicy.LOCAL
    assert service.traffic_distribution == "PreferClose"
    assert service.publish_not_ready_addresses
    http, grpc, dns = service.ports
    assert (http.port, http.target_port, http.target_port_name, http.app_protocol) == (
        9080,
        "http",
        "http",
        "http",
    )
    assert (grpc.target_port, grpc.target_port_name) == (19090, None)
    # targetPort defaults to port, protocol to TCP, as the API server does.
    assert (dns.target_port, dns.protocol) == (53, Protocol.UDP)


@pytest.mark.parametrize(
    ("spec", "cluster_ips", "headless"),
    [
        ("{clusterIP: None}", (), True),
        ("{clusterIP: ''}", (), False),
        ("{}", (), False),
        ("{clusterIPs: [None]}", (), True),
        ("{type: ExternalName, externalName: example.com}", (), False),
    ],
)
def test_service_cluster_ip_placeholders(
    spec: str, cluster_ips: tuple[object, ...], headless: bool
) -> None:
    service = parse_object(
        load(f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: s, namespace: ns}}
        spec: {spec}
    """)
    )
    assert isinstance(service, Service)
    assert service.cluster_ips == cluster_ips
    assert service.headless is headless


def test_endpoint_slice() -> None:
    endpoints = parse_object(
        load("""
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: ext-abc, namespace: ns, labels: {kubernetes.io/service-name: ext}}
        addressType: IPv6
        endpoints:
        - addresses: ["FD00::0001"]
          conditions: {ready: false}
          targetRef: {kind: Pod, name: p, namespace: ns, uid: u1}
          nodeName: node-a
        - addresses: ["fd00::2"]
        ports: [{name: http, port: 8080}, {}]
    """)
    )
    assert isinstance(endpoints, EndpointSlice)
    assert endpoints.service_name == "ext"
    assert endpoints.address_type is AddressType.IPV6
    first, second = endpoints.endpoints
    assert first.addresses == ("fd00::1",)  # normalised
    assert first.ready is False
    assert first.target_ref == TargetRef("Pod", "p", "ns", "u1")
    assert second.ready is None and second.target_ref is None
    assert [(p.name, p.port) for p in endpoints.ports] == [("http", 8080), (None, None)]


@pytest.mark.parametrize(
    ("text", "cls", "key"),
    [
        (
            "{apiVersion: v1, kind: Namespace, metadata: {name: bookinfo, namespace: x}}",
            Namespace,
            ObjectKey("Namespace", "", "bookinfo"),
        ),
        (
            "{apiVersion: v1, kind: Node, metadata: {name: node-a}}",
            Node,
            ObjectKey("Node", "", "node-a"),
        ),
        (
            "{apiVersion: v1, kind: ServiceAccount, metadata: {name: sa, namespace: ns}}",
            ServiceAccount,
            ObjectKey("ServiceAccount", "ns", "sa"),
        ),
    ],
)
def test_metadata_only_kinds(text: str, cls: type, key: ObjectKey) -> None:
    obj = parse_object(load(text))
    assert isinstance(obj, cls) and obj is not None
    assert obj.key == key  # cluster-scoped kinds ignore metadata.namespace


@pytest.mark.parametrize(
    "text",
    [
        "{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}",
        "{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}",
        # Same kind name, different group: Istio's own Gateway is not modelled.
        "{apiVersion: networking.istio.io/v1, kind: Gateway, metadata: {name: g}}",
    ],
)
def test_unknown_kinds_are_skipped(text: str) -> None:
    assert parse_object(load(text)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "<unknown kind> <unnamed>: expected a Kubernetes object"),
        ("{apiVersion: v1}", "<unknown kind> <unnamed>: kind: required field is missing"),
        ("{kind: Pod}", "Pod <unnamed>: apiVersion: required field is missing"),
        (
            "{apiVersion: v1, kind: Pod, metadata: {namespace: ns}}",
            "Pod ns/<unnamed>: metadata.name: required field is missing",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: Bad_Name}}",
            'Pod default/Bad_Name: metadata.name: "Bad_Name" is not a valid object name',
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: a/b}}",
            'metadata.namespace: "a/b" is not a valid namespace name',
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p, labels: {version: 1}}}",
            "Pod default/p: metadata.labels.version: expected a string value, got 1",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p, annotations: {a.io/x: true}}}",
            'metadata.annotations["a.io/x"]: expected a string value, got true',
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {podIP: 10.0.0.300}}",
            'Pod default/p: status.podIP: expected an IP address, got "10.0.0.300"',
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {podIPs: [{ip: x}]}}",
            "status.podIPs[0].ip: expected an IP address",
        ),
        # A version no API server serves, and a misspelt group of a kind we model (which
        # would silently drop, say, a DENY rule): errors, not skipped documents.
        (
            "{apiVersion: v9, kind: Pod, metadata: {name: p}}",
            "Pod p: apiVersion: apiVersion v9: not a version of the core API (expected v1)",
        ),
        (
            "{apiVersion: secuirty.istio.io/v1, kind: AuthorizationPolicy,"
            " metadata: {name: deny, namespace: ns}}",
            "AuthorizationPolicy ns/deny: apiVersion: apiVersion secuirty.istio.io/v1: "
            "AuthorizationPolicy is not served in that group; did you mean security.istio.io?",
        ),
        (
            "{apiVersion: security.istio.io/version1, kind: AuthorizationPolicy,"
            " metadata: {name: deny, namespace: ns}}",
            "apiVersion security.istio.io/version1: not a version of security.istio.io",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, status: {phase: Dead}}",
            "status.phase: expected one of Pending, Running, Succeeded, Failed, Unknown, "
            'got "Dead"',
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p},"
            " spec: {containers: [{ports: [{containerPort: 70000}]}]}}",
            "spec.containers[0].ports[0].containerPort: expected an integer 1-65535, got 70000",
        ),
        (
            "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {hostNetwork: 'yes'}}",
            'spec.hostNetwork: expected true or false, got "yes"',
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s, namespace: ns},"
            " spec: {ports: [{port: 80}, {port: http}]}}",
            'Service ns/s: spec.ports[1].port: expected an integer 1-65535, got "http"',
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{name: x}]}}",
            "spec.ports[0].port: required field is missing",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s},"
            " spec: {ports: [{port: 80, targetPort: '8080'}]}}",
            'spec.ports[0].targetPort: expected a port number 1-65535 or a port name, got "8080"',
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s},"
            " spec: {ports: [{port: 80, targetPort: 0}]}}",
            "spec.ports[0].targetPort: expected a port number 1-65535 or a port name, got 0",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, "
            "spec: {clusterIPs: [10.0.0.1, x]}}",
            'spec.clusterIPs[1]: expected an IP address, "None" or "", got "x"',
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {type: Magic}}",
            "spec.type: expected one of ClusterIP, NodePort, LoadBalancer, ExternalName",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ipFamilies: [IPv5]}}",
            'spec.ipFamilies[0]: expected one of IPv4, IPv6, got "IPv5"',
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: {port: 80}}}",
            "spec.ports: expected a list, got an object",
        ),
        (
            "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: [1]}",
            "spec: expected an object, got a list",
        ),
        (
            "{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e}}",
            "EndpointSlice default/e: addressType: required field is missing",
        ),
        # A Secret's error names the key, never the value.
        (
            "{apiVersion: v1, kind: Secret, metadata: {name: s}, data: {tls.key: 'sec!ret'}}",
            'Secret default/s: ["data.tls.key"]: not valid base64',
        ),
        (
            "{apiVersion: v1, kind: Secret, metadata: {name: s}, stringData: {ca.crt: 7}}",
            'Secret default/s: ["stringData.ca.crt"]: expected a string',
        ),
        (
            "{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: e},"
            " addressType: IPv4, endpoints: [{addresses: ['fd00::1']}]}",
            'endpoints[0].addresses[0]: expected an IPv4 address, got "fd00::1"',
        ),
    ],
)
def test_invalid_core_objects(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_object(load(text))
    assert message in str(raised.value)


def test_error_carries_structured_identity() -> None:
    with pytest.raises(ManifestError) as raised:
        parse_object(
            load("""
            apiVersion: v1
            kind: Service
            metadata: {name: s, namespace: ns}
            spec: {ports: [{port: 80}, {port: 0}]}
        """)
        )
    error = raised.value
    assert (error.kind, error.namespace, error.name) == ("Service", "ns", "s")
    assert error.field == "spec.ports[1].port"
    assert error.message == "expected an integer 1-65535, got 0"


SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: egress-client
  namespace: shop
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"data": {"tls.key": "a2V5"}}'
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
  password: aHVudGVyMg==
stringData:
  ca.crt: ca
"""


def test_secret_keeps_only_credential_keys() -> None:
    secret = parse_object(load(SECRET))
    assert isinstance(secret, Secret)
    assert dict(secret.data) == {"tls.crt": b"cert", "tls.key": b"key", "ca.crt": b"ca"}
    # kubectl's copy of the whole object (data included) is not kept, nor printed.
    assert dict(secret.meta.annotations) == {}
    assert "key" not in repr(secret) and "a2V5" not in repr(secret)
