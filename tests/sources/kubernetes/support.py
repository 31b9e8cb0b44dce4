"""Objects and helpers for tests against the real API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from xds.model.mesh import ChangeSet, MeshConfig, MeshStore
from xds.sources.kubernetes.api import ClusterConfig
from xds.sources.kubernetes.reflector import Backoff
from xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource

from ...kube.cluster import Api, Cluster


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"istio.io/dataplane-mode": "ambient", **labels}}}


def node(name: str, zone: str = "zone-a") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": zone}}}


def service_account(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns}}


def pod(ns: str, name: str, ip: str, *, node_name: str = "node-a", app: str = "web",
        account: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": node_name, "serviceAccountName": account,
                 "containers": [{"name": "web", "image": "web:1",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "hostIP": "172.18.0.2",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def service(ns: str, name: str, cluster_ip: str, *, app: str = "web",
            port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": app}, "clusterIP": cluster_ip,
                     "ports": [{"name": "http", "port": port, "targetPort": 8080}]}}


def authorization_policy(ns: str, name: str, action: str = "DENY") -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"action": action, "rules": [{"from": [{"source": {
                "namespaces": ["blocked"]}}]}]}}


def pod_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods/{name}"


def fast_options(cluster: Cluster, **overrides: Any) -> KubernetesOptions:
    options = KubernetesOptions(ClusterConfig(cluster.kubeconfig), recheck_interval=0.5,
                                backoff=Backoff(base=0.05, ceiling=0.5))
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


@asynccontextmanager
async def running_source(options: KubernetesOptions,
                         mesh: MeshStore | None = None) -> AsyncIterator[Watched]:
    """A KubernetesSource feeding a MeshStore, synced; cancelled on exit."""
    watched = Watched(mesh or MeshStore(MeshConfig()))
    source = KubernetesSource(options, watched.mesh, watched.changes.append)
    watched.source = source
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(30):
            synced = asyncio.create_task(source.synced.wait())
            await asyncio.wait({synced, task}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        yield watched
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.api.close()


class Watched:
    def __init__(self, mesh: MeshStore) -> None:
        self.mesh = mesh
        self.changes: list[ChangeSet] = []
        self.source: KubernetesSource | None = None

    def changed_keys(self) -> set[str]:
        return {str(key) for change in self.changes for key in change.keys}


def apply_all(api: Api, *objects: dict[str, Any]) -> None:
    for obj in objects:
        api.apply(obj)
