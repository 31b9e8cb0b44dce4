"""Who is on the other end of a stream: the parsed xDS ``Node``.

istiod's node id convention is ``<type>~<ip>~<pod>.<namespace>~<dns domain>``,
e.g. ``ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from envoy.config.core.v3 import base_pb2
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
    # The node's metadata Struct as JSON: whatever the proxy sent, so every reader checks
    # the type of the value it takes.
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


MAX_NODE_ID = 1024
"""Longer than any real one (a 253-character pod name, a 63-character namespace...)."""
_QUOTED = 120  # characters of a rejected node id quoted in errors (and so in logs)
_POD = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DOMAIN = re.compile(r"[a-z0-9.-]*")


def _quoted(node_id: str) -> str:
    return repr(node_id if len(node_id) <= _QUOTED else node_id[:_QUOTED] + "...")


def parse_node_id(node_id: str, metadata: dict[str, Any] | None = None) -> ProxyNode:
    """Parse an istiod-style node id; raises ``InvalidNode`` saying what is wrong.

    The parts must be what Kubernetes allows (a pod name, a namespace name, a DNS
    domain): node ids are logged and shown in debug views, so nothing else gets in."""
    if not node_id:
        raise InvalidNode("node.id is empty; expected <type>~<ip>~<pod>.<namespace>~<domain>")
    if len(node_id) > MAX_NODE_ID:
        raise InvalidNode(
            f"node.id {_quoted(node_id)} is {len(node_id)} characters long; at most {MAX_NODE_ID}"
        )
    parts = node_id.split("~")
    if len(parts) != 4:
        raise InvalidNode(
            f"node.id {_quoted(node_id)} has {len(parts)} '~'-separated parts, "
            "expected 4: <type>~<ip>~<pod>.<namespace>~<domain>"
        )
    kind, ip, pod_and_ns, domain = parts
    try:
        proxy_type = ProxyType(kind)
    except ValueError:
        known = ", ".join(t.value for t in ProxyType)
        raise InvalidNode(
            f"node.id {_quoted(node_id)}: unknown proxy type {kind[:40]!r} (known: {known})"
        ) from None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidNode(f"node.id {_quoted(node_id)}: {ip[:60]!r} is not an IP address") from None
    pod, dot, namespace = pod_and_ns.rpartition(".")
    if not dot or not pod or not namespace:
        raise InvalidNode(f"node.id {_quoted(node_id)}: third part must be <pod>.<namespace>")
    if len(pod) > 253 or not _POD.fullmatch(pod):
        raise InvalidNode(f"node.id {_quoted(node_id)}: {pod[:80]!r} is not a pod name")
    if len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace):
        raise InvalidNode(f"node.id {_quoted(node_id)}: {namespace[:80]!r} is not a namespace name")
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise InvalidNode(f"node.id {_quoted(node_id)}: {domain[:80]!r} is not a DNS domain")
    return ProxyNode(proxy_type, ip, pod, namespace, domain, dict(metadata or {}))


def parse_node(node: base_pb2.Node) -> ProxyNode:
    """Parse an ``envoy.config.core.v3.Node`` message."""
    metadata = MessageToDict(node.metadata) if node.HasField("metadata") else {}
    return parse_node_id(node.id, metadata)
