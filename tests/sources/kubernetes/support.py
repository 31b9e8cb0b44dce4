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

from ...kube.cluster import Cluster


def fast_options(cluster: Cluster, **overrides: Any) -> KubernetesOptions:
    options = KubernetesOptions(
        ClusterConfig(cluster.kubeconfig),
        recheck_interval=0.5,
        backoff=Backoff(base=0.05, ceiling=0.5),
    )
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


@asynccontextmanager
async def running_source(
    options: KubernetesOptions, mesh: MeshStore | None = None
) -> AsyncIterator[Watched]:
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
        await source.close()


class Watched:
    def __init__(self, mesh: MeshStore) -> None:
        self.mesh = mesh
        self.changes: list[ChangeSet] = []
        self.source: KubernetesSource | None = None

    def changed_keys(self) -> set[str]:
        return {str(key) for change in self.changes for key in change.keys}
