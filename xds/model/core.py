"""Core Kubernetes kinds: Namespace, Node, Pod, Service, ServiceAccount, EndpointSlice, Secret.

Fields are what the API server returns after defaulting (``targetPort``
defaults to ``port``, ``protocol`` to TCP, ``serviceAccountName`` to
``default``, ``type`` to ClusterIP), so a hand-written manifest and a live
object mean the same thing. ``ipFamilies`` is the exception: it is kept as
written, since the upstream conformance fixtures rely on it being empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from xds.model import wellknown
from xds.model.frozen import EMPTY_LABELS, FrozenMap, Labels
from xds.model.meta import IPAddress, KubeObject


class Protocol(StrEnum):
    """The L4 protocol of a container, Service or EndpointSlice port."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(KubeObject):
    kind = "Namespace"
    api_group = ""
    namespaced = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Node(KubeObject):
    """A node; only its topology labels matter (pod locality)."""

    kind = "Node"
    api_group = ""
    namespaced = False


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A declared container port; ``name`` is what named Service targetPorts resolve against."""

    port: int
    name: str = ""
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod(KubeObject):
    """A pod.

    ``container_ports`` lists the ports of ``spec.containers`` followed by those
    of restartable init containers (``restartPolicy: Always``, i.e. native
    sidecars), the order in which named target ports are looked up.
    ``pod_ips`` is ``status.podIPs`` in order, or ``[status.podIP]`` when the
    list is absent. ``terminating`` is true once ``deletionTimestamp`` is set.
    """

    kind = "Pod"
    api_group = ""

    node_name: str = ""
    service_account: str = "default"
    host_network: bool = False
    phase: PodPhase = PodPhase.PENDING
    pod_ips: tuple[IPAddress, ...] = ()
    ready: bool = False
    terminating: bool = False
    container_ports: tuple[ContainerPort, ...] = ()

    def container_port_named(self, name: str) -> ContainerPort | None:
        """The first TCP container port called ``name``, as named targetPorts resolve."""
        for port in self.container_ports:
            if port.name == name and port.protocol is Protocol.TCP:
                return port
        return None


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"
    EXTERNAL_NAME = "ExternalName"


class IPFamily(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"


class InternalTrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """``spec.ports[]``; ``target_port`` is a number, or a container port name."""

    port: int
    target_port: int | str
    name: str = ""
    protocol: Protocol = Protocol.TCP
    app_protocol: str | None = None

    @property
    def target_port_name(self) -> str | None:
        """The container port name when ``targetPort`` is named, else ``None``."""
        return self.target_port if isinstance(self.target_port, str) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Service(KubeObject):
    """A Kubernetes Service.

    ``cluster_ips`` holds ``spec.clusterIPs`` (or ``spec.clusterIP``) without
    the ``""``/``None`` placeholders; ``headless`` records ``clusterIP: None``.
    An empty ``selector`` selects no pods (endpoints are managed elsewhere).
    ``traffic_distribution`` is kept verbatim: unknown values fall through to
    the annotation, which translators must see.
    """

    kind = "Service"
    api_group = ""

    type: ServiceType = ServiceType.CLUSTER_IP
    cluster_ips: tuple[IPAddress, ...] = ()
    headless: bool = False
    selector: Labels = EMPTY_LABELS
    ports: tuple[ServicePort, ...] = ()
    ip_families: tuple[IPFamily, ...] = ()
    internal_traffic_policy: InternalTrafficPolicy = InternalTrafficPolicy.CLUSTER
    traffic_distribution: str | None = None
    publish_not_ready_addresses: bool = False
    external_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAccount(KubeObject):
    kind = "ServiceAccount"
    api_group = ""


CREDENTIAL_KEYS = frozenset(
    {"tls.crt", "tls.key", "ca.crt", "ca.crl", "cert", "key", "cacert", "crl", "tls.ocsp-staple"}
)
"""The Secret keys a credential is read from (istiod's names: the ``kubernetes.io/tls``
ones and the generic ones)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret(KubeObject):
    """A Secret, as far as it can be a TLS credential (DestinationRule ``credentialName``).

    Only the values under ``CREDENTIAL_KEYS`` are kept: nothing else a cluster keeps in
    Secrets is held in memory. Which of them make a certificate, a key or a CA bundle
    is decided where they are used (istiod's precedence). Never printed: the data is
    left out of ``repr``."""

    kind = "Secret"
    api_group = ""

    data: FrozenMap[str, bytes] = field(default_factory=FrozenMap, repr=False)


class AddressType(StrEnum):
    IPV4 = "IPv4"
    IPV6 = "IPv6"
    FQDN = "FQDN"


@dataclass(frozen=True, slots=True)
class TargetRef:
    """An EndpointSlice endpoint's ``targetRef`` (usually the backing Pod)."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    """One endpoint of an EndpointSlice; ``ready`` is ``None`` when the condition is unset."""

    addresses: tuple[str, ...]
    ready: bool | None = None
    target_ref: TargetRef | None = None
    node_name: str = ""


@dataclass(frozen=True, slots=True)
class SlicePort:
    name: str | None = None
    port: int | None = None
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSlice(KubeObject):
    """An EndpointSlice: endpoints of selectorless Services and non-pod backends.

    Addresses are kept as strings because FQDN slices hold hostnames; for IPv4
    and IPv6 slices they are validated and normalised.
    """

    kind = "EndpointSlice"
    api_group = "discovery.k8s.io"

    address_type: AddressType = AddressType.IPV4
    endpoints: tuple[SliceEndpoint, ...] = ()
    ports: tuple[SlicePort, ...] = ()

    @property
    def service_name(self) -> str | None:
        """The owning Service's name (label ``kubernetes.io/service-name``)."""
        return self.labels.get(wellknown.SERVICE_NAME)
