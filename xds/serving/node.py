"""Who is on the other end of a stream: the parsed xDS ``Node``.

istiod's node id convention is ``<type>~<ip>~<pod>.<namespace>~<dns domain>``,
e.g. ``ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from google.protobuf.json_format import MessageToDict


class ProxyType(Enum):
    ZTUNNEL = "ztunnel"
    WAYPOINT = "waypoint"
    ROUTER = "router"
    SIDECAR = "sidecar"


class InvalidNode(ValueError):
    """The node id or metadata does not describe a proxy we can serve."""


@dataclass(frozen=True)
class ProxyNode:
    type: ProxyType
    ip: str
    pod_name: str
    namespace: str
    dns_domain: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        """The short id istioctl and istiod's debug endpoints use: ``pod.namespace``."""
        return f"{self.pod_name}.{self.namespace}"

    @property
    def node_name(self) -> str:
        """The Kubernetes node the proxy runs on, if it said so (ztunnel's NODE_NAME)."""
        value = self.metadata.get("NODE_NAME", "")
        return value if isinstance(value, str) else ""

    @property
    def cluster_id(self) -> str:
        value = self.metadata.get("CLUSTER_ID", "")
        return value if isinstance(value, str) and value else "Kubernetes"

    def labels(self) -> dict[str, str]:
        value = self.metadata.get("LABELS", {})
        if not isinstance(value, dict):
            return {}
        return {str(k): str(v) for k, v in value.items()}


def parse_node_id(node_id: str, metadata: dict[str, Any] | None = None) -> ProxyNode:
    """Parse an istiod-style node id; raises ``InvalidNode`` saying what is wrong."""
    if not node_id:
        raise InvalidNode("node.id is empty; expected <type>~<ip>~<pod>.<namespace>~<domain>")
    parts = node_id.split("~")
    if len(parts) != 4:
        raise InvalidNode(f"node.id {node_id!r} has {len(parts)} '~'-separated parts, expected 4: "
                          "<type>~<ip>~<pod>.<namespace>~<domain>")
    kind, ip, pod_and_ns, domain = parts
    try:
        proxy_type = ProxyType(kind)
    except ValueError:
        known = ", ".join(t.value for t in ProxyType)
        raise InvalidNode(
            f"node.id {node_id!r}: unknown proxy type {kind!r} (known: {known})") from None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidNode(f"node.id {node_id!r}: {ip!r} is not an IP address") from None
    pod, dot, namespace = pod_and_ns.rpartition(".")
    if not dot or not pod or not namespace:
        raise InvalidNode(
            f"node.id {node_id!r}: third part {pod_and_ns!r} must be <pod>.<namespace>")
    return ProxyNode(proxy_type, ip, pod, namespace, domain, dict(metadata or {}))


def parse_node(node: Any) -> ProxyNode:
    """Parse an ``envoy.config.core.v3.Node`` message."""
    metadata = MessageToDict(node.metadata) if node.HasField("metadata") else {}
    return parse_node_id(node.id, metadata)
