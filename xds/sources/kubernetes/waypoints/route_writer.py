"""Writes the parent status of routes bound to waypoints (``routes.route_parents``).

Runs on the leader only. HTTPRoutes and GRPCRoutes are watched raw (their
status and generation are needed); what they refer to is looked up in the
mesh model the source keeps. A route is queued when it changes, and every
route when a Service, ServiceEntry, Gateway, Namespace or ReferenceGrant changes (a backend,
a parent or a permission appearing changes its conditions). Writes are merge patches of
``status.parents`` carrying the resourceVersion they were computed from, so a
concurrent writer's entries are never overwritten blindly: a conflict (409)
is retried after the watch has brought the newer route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from xds.model.core import Namespace, Service
from xds.model.gateway import Gateway, ReferenceGrant
from xds.model.mesh import MeshStore
from xds.model.networking import ServiceEntry
from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.sources.kubernetes.reflector import Backoff, Callbacks, ListWatch
from xds.sources.kubernetes.waypoints.controller import UNAVAILABLE_RETRY
from xds.sources.kubernetes.waypoints.routes import parents_differ, route_parents
from xds.sources.kubernetes.workqueue import WorkQueue

log = logging.getLogger("xds.kube")

ROUTE_PATHS: Final = {
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/{namespace}httproutes",
    "GRPCRoute": "/apis/gateway.networking.k8s.io/v1/{namespace}grpcroutes",
}
_REFERENCED: Final = frozenset(
    {"Service", "ServiceEntry", "Gateway", "Namespace", "ReferenceGrant"}
)

RouteKey = tuple[str, str, str]  # kind, namespace, name


class ModelLookup:
    """``routes.MeshLookup`` answered from the mesh model."""

    def __init__(self, mesh: MeshStore) -> None:
        self._mesh = mesh

    def gateway(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        gateway = self._mesh.get(Gateway, namespace, name)
        if gateway is None:
            return None
        return {
            "class": gateway.gateway_class_name,
            "listeners": [(listener.name, listener.port) for listener in gateway.listeners],
        }

    def service_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        service = self._mesh.get(Service, namespace, name)
        return None if service is None else service.labels

    def service_entry_labels(self, namespace: str, name: str) -> Mapping[str, str] | None:
        entry = self._mesh.get(ServiceEntry, namespace, name)
        return None if entry is None else entry.labels

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        found = self._mesh.get(Namespace, "", namespace)
        return None if found is None else found.labels

    def has_host(self, namespace: str, host: str) -> bool:
        return any(
            host in entry.hosts
            for entry in self._mesh.objects(ServiceEntry)
            if entry.meta.namespace == namespace or not entry.export_to or "*" in entry.export_to
        )

    def reference_grants(self, namespace: str) -> Iterable[ReferenceGrant]:
        return self._mesh.objects(ReferenceGrant, namespace)


def _path(kind: str, namespace: str = "") -> str:
    return ROUTE_PATHS[kind].format(namespace=f"namespaces/{namespace}/" if namespace else "")


class RouteStatusWriter:
    def __init__(
        self, api: KubeApi, mesh: MeshStore, *, domain_suffix: str, backoff: Backoff | None = None
    ) -> None:
        self._api = api
        self._lookup = ModelLookup(mesh)
        self._domain_suffix = domain_suffix
        self._routes: dict[RouteKey, dict[str, Any]] = {}
        self._queue: WorkQueue[RouteKey] = WorkQueue(
            self._reconcile,
            what="write route status",
            describe=lambda key: {"route": f"{key[0]} {key[1]}/{key[2]}"},
            backoff=backoff,
        )
        self._watches = {
            kind: ListWatch(
                api,
                _path(kind),
                f"{kind.lower()}s/status",
                Callbacks(partial(self.listed, kind), partial(self.event, kind)),
                backoff=backoff,
            )
            for kind in ROUTE_PATHS
        }

    def mesh_changed(self, kinds: frozenset[str]) -> None:
        """Objects of ``kinds`` changed in the model: what routes refer to may have."""
        if not kinds.isdisjoint(_REFERENCED):
            for key in self._routes:
                self._queue.add(key)

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._watch(kind, watch), name=f"watch-{watch.name}")
            for kind, watch in self._watches.items()
        ]
        tasks.append(asyncio.create_task(self._queue.run(), name="route-status"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, kind: str, watch: ListWatch) -> None:
        """A kind whose CRD is missing (or that RBAC forbids) is looked for again later,
        without stopping the other."""
        while True:
            try:
                await watch.run()
            except ApiError as error:
                log.warning(
                    "route status not written for this kind; looking again later",
                    extra={"kind": kind, "reason": str(error)},
                )
                await asyncio.sleep(UNAVAILABLE_RETRY)

    async def _reconcile(self, key: RouteKey) -> None:
        route = self._routes.get(key)
        if route is None:
            return
        current = (route.get("status") or {}).get("parents") or []
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        wanted = route_parents(route, self._lookup, domain_suffix=self._domain_suffix, now=now)
        if not parents_differ(current, wanted):
            return
        kind, namespace, name = key
        version = (route.get("metadata") or {}).get("resourceVersion")
        try:
            await self._api.merge_patch(
                f"{_path(kind, namespace)}/{name}/status",
                {"metadata": {"resourceVersion": version}, "status": {"parents": wanted}},
            )
        except ApiError as error:
            if error.not_found:
                return
            raise
        log.info("route status written", extra={"route": f"{kind} {namespace}/{name}"})

    def listed(self, kind: str, items: list[dict[str, Any]]) -> None:
        for key in [k for k in self._routes if k[0] == kind]:
            del self._routes[key]
        for item in items:
            self.event(kind, "ADDED", item)

    def event(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        """``kind`` of route; ``event`` ADDED, MODIFIED or DELETED."""
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event == "DELETED":
            self._routes.pop(key, None)
            return
        self._routes[key] = obj
        self._queue.add(key)
