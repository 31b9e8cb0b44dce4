"""A control plane in Kubernetes mode against the test API server, and what proxies send."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from xds.client import DeltaClient
from xds.plane.app import ControlPlane
from xds.security.plane import SecurityOptions
from xds.sources.kubernetes.api import ClusterConfig
from xds.sources.kubernetes.leader import LeaseTiming
from xds.sources.kubernetes.reflector import Backoff
from xds.sources.kubernetes.source import KubernetesOptions
from xds.type_urls import SECRET

from ..conftest import running_control_plane
from ..kube.cluster import ISSUER, Api, Cluster
from ..kube.objects import node, pod

SYSTEM = "istio-system"


def kubernetes_options(
    cluster: Cluster, kubeconfig: Any = None, *, manage_waypoints: bool = False
) -> KubernetesOptions:
    """Fast retries and a short Lease. The waypoint controller is off unless asked for:
    most tests write Gateway status themselves, as a stand-in for it."""
    return KubernetesOptions(
        ClusterConfig(kubeconfig or cluster.kubeconfig),
        recheck_interval=0.5,
        backoff=Backoff(base=0.05, ceiling=0.5),
        lease=LeaseTiming.scaled(3.0),
        manage_waypoints=manage_waypoints,
    )


@asynccontextmanager
async def kube_plane(
    cluster: Cluster, *, system_namespace: str = SYSTEM, **overrides: Any
) -> AsyncIterator[ControlPlane]:
    """A ControlPlane reading ``cluster``, ready, with the TLS port on."""
    cluster.api().ensure(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": system_namespace}},
        node("node-a", "zone-a"),
        node("node-b", "zone-b"),
    )
    settings: dict[str, Any] = {
        "kubernetes": kubernetes_options(cluster),
        "secure_port": -1,
        "security": SecurityOptions(system_namespace=system_namespace),
    }
    settings.update(overrides)
    async with running_control_plane(None, **settings) as plane:
        yield plane


@dataclass
class Changes:
    """What one or more Delta responses changed, per type: updated and removed names."""

    updated: dict[str, set[str]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)

    def add(self, response: Any) -> None:
        self.updated.setdefault(response.type_url, set()).update(r.name for r in response.resources)
        self.removed.setdefault(response.type_url, set()).update(response.removed_resources)


async def changes(
    client: DeltaClient, until: Any, within: float = 10.0, quiet: float = 0.5
) -> Changes:
    """Responses until ``until(changes)`` holds, then until ``quiet`` seconds pass."""
    seen = Changes()
    deadline = time.monotonic() + within
    while not until(seen):
        seen.add(await client.next(within=max(0.01, deadline - time.monotonic())))
    while True:
        try:
            seen.add(await client.next(within=quiet))
        except TimeoutError:
            return seen


def ztunnel_client(
    channel: grpc.aio.Channel,
    node_name: str = "node-a",
    headers: list[tuple[str, str]] | None = None,
) -> DeltaClient:
    """Node id and metadata as a ztunnel DaemonSet pod sends them."""
    return DeltaClient(
        channel,
        f"ztunnel~10.244.0.2~ztunnel-{node_name}.{SYSTEM}~{SYSTEM}.svc.cluster.local",
        metadata={
            "NAME": f"ztunnel-{node_name}",
            "NAMESPACE": SYSTEM,
            "INSTANCE_IPS": "10.244.0.2",
            "NODE_NAME": node_name,
            "CLUSTER_ID": "Kubernetes",
        },
        metadata_headers=headers or [],
    )


def waypoint_client(
    channel: grpc.aio.Channel, namespace: str, gateway: str, token: str
) -> DeltaClient:
    """Node id and metadata as a waypoint Envoy of Gateway ``namespace/gateway`` sends them."""
    return DeltaClient(
        channel,
        f"waypoint~10.2.0.99~{gateway}-6c5d-x1.{namespace}~{namespace}.svc.cluster.local",
        metadata={
            "LABELS": {"gateway.networking.k8s.io/gateway-name": gateway},
            "NAMESPACE": namespace,
        },
        metadata_headers=bearer(token),
    )


async def secret_names(client: DeltaClient, wanted: list[str], within: float = 10) -> set[str]:
    """Subscribe to SDS ``wanted`` and return the names served, once the server has
    answered (what it does not send, it does not have for this stream)."""
    await client.connect({SECRET: wanted})
    response = await client.next(within)
    assert response.type_url == SECRET
    return {resource.name for resource in response.resources}


def tls_channel(plane: ControlPlane) -> grpc.aio.Channel:
    assert plane.security is not None
    return grpc.aio.secure_channel(
        f"127.0.0.1:{plane.ports.secure}",
        grpc.ssl_channel_credentials(plane.security.ca.root_pem.encode()),
        options=[
            (
                "grpc.ssl_target_name_override",
                f"istiod.{plane.options.security.system_namespace}.svc",
            )
        ],
    )


def bearer(token: str, cluster_id: str | None = "Kubernetes") -> list[tuple[str, str]]:
    headers = [("authorization", f"Bearer {token}")]
    if cluster_id is not None:
        headers.append(("clusterid", cluster_id))
    return headers


def request_token(
    api: Api,
    namespace: str,
    account: str,
    *,
    audiences: tuple[str, ...] = ("istio-ca",),
    bound_pod: dict[str, Any] | None = None,
    seconds: int = 3600,
) -> str:
    """A TokenRequest token, as the kubelet projects it into a pod."""
    spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": seconds}
    if bound_pod is not None:
        spec["boundObjectRef"] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": bound_pod["metadata"]["name"],
            "uid": bound_pod["metadata"]["uid"],
        }
    reply = api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    return str(reply["status"]["token"])


def expired_token(cluster: Cluster, namespace: str, account: str) -> str:
    """A token signed by the cluster's own service-account key that expired an hour ago."""
    sa = cluster.api().get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}")
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "aud": ["istio-ca"],
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": account, "uid": sa["metadata"]["uid"]},
        },
    }
    key = serialization.load_pem_private_key((cluster.workdir / "sa.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def running_pod(api: Api, namespace: str, name: str, ip: str, **kwargs: Any) -> dict[str, Any]:
    """Create a pod with its status set; returns it as the API server has it (with uid)."""
    manifest = pod(namespace, name, ip, **kwargs)
    api.apply(manifest)
    return dict(api.get(f"/api/v1/namespaces/{namespace}/pods/{name}"))
