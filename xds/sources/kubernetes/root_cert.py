"""The ``istio-ca-root-cert`` ConfigMap in every namespace: where proxies find the root.

As istiod's namespace controller: one ConfigMap per namespace, data key
``root-cert.pem``, label ``istio.io/config: "true"``; created when a namespace
appears, put back when it is edited or deleted, rewritten when the root
changes; ``kube-public``, ``kube-node-lease`` and ``local-path-storage`` are
skipped. Two watches drive it (namespaces, and ConfigMaps of that name); each
namespace that may be wrong goes into a queue, and one worker reconciles the
queue (``WorkQueue``), retrying failures with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.sources.kubernetes.reflector import Backoff, Callbacks, ListWatch
from xds.sources.kubernetes.workqueue import WorkQueue

log = logging.getLogger("xds.kube")

CONFIG_MAP: Final = "istio-ca-root-cert"
DATA_KEY: Final = "root-cert.pem"
LABEL: Final = {"istio.io/config": "true"}
SKIPPED_NAMESPACES: Final = frozenset({"kube-public", "kube-node-lease", "local-path-storage"})


def desired(namespace: str, root_pem: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": namespace, "labels": dict(LABEL)},
        "data": {DATA_KEY: root_pem},
    }


def is_current(config_map: Mapping[str, Any] | None, root_pem: str) -> bool:
    if config_map is None or (config_map.get("metadata") or {}).get("deletionTimestamp"):
        return False
    labels = (config_map.get("metadata") or {}).get("labels") or {}
    return (config_map.get("data") or {}).get(DATA_KEY) == root_pem and all(
        labels.get(k) == v for k, v in LABEL.items()
    )


class RootCertPublisher:
    def __init__(
        self,
        api: KubeApi,
        root_pem: Callable[[], str],
        *,
        backoff: Backoff | None = None,
        resync_interval: float = 60.0,
    ) -> None:
        self._api = api
        self._resync_interval = resync_interval
        self._root_pem = root_pem
        self._namespaces: set[str] = set()
        self._config_maps: dict[str, dict[str, Any] | None] = {}
        self._queue = WorkQueue(
            self._reconcile,
            what="write the root certificate ConfigMap",
            describe=lambda namespace: {"namespace": namespace},
            backoff=backoff,
        )
        self._namespace_watch = ListWatch(
            api,
            "/api/v1/namespaces",
            "namespaces/root-cert",
            Callbacks(self._namespaces_listed, self._namespace_event),
            backoff=backoff,
        )
        self._config_map_watch = ListWatch(
            api,
            "/api/v1/configmaps",
            f"configmaps/{CONFIG_MAP}",
            Callbacks(self._config_maps_listed, self._config_map_event),
            params=[("fieldSelector", f"metadata.name={CONFIG_MAP}")],
            backoff=backoff,
        )

    def root_changed(self) -> None:
        """The CA's root changed: every namespace needs the new one."""
        for namespace in self._namespaces:
            self._enqueue(namespace)

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._config_map_watch.run()),
            asyncio.create_task(self._namespace_watch.run()),
            asyncio.create_task(self._work()),
            asyncio.create_task(self._resync()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    # 403/404 end a watch for good: the ClusterRole lacks ConfigMap or
                    # Namespace access. Say so loudly; serving goes on without it.
                    log.error(
                        "istio-ca-root-cert is not being published",
                        extra={"reason": str(task.exception())},
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resync(self) -> None:
        """Look at every namespace again now and then, as informers resync: a missed
        event (or a failed write given up on) cannot leave a namespace without its root."""
        while True:
            await asyncio.sleep(self._resync_interval)
            self.root_changed()

    def _enqueue(self, namespace: str) -> None:
        if namespace not in SKIPPED_NAMESPACES:
            self._queue.add(namespace)

    async def _work(self) -> None:
        # Namespaces are known only after the ConfigMaps are: no needless creates.
        await self._config_map_watch.synced.wait()
        await self._queue.run()

    async def _reconcile(self, namespace: str) -> None:
        if namespace not in self._namespaces:
            return
        root = self._root_pem()
        current = self._config_maps.get(namespace)
        if is_current(current, root):
            return
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        body = desired(namespace, root)
        # What we write is not put into the cache: only the watch updates it, so an
        # event that arrives while a write is in flight (a deletion) is never undone
        # by that write's stale answer.
        if current is None:
            try:
                await self._api.create(path, body)
                log.info("root certificate published", extra={"namespace": namespace})
                return
            except ApiError as error:
                if error.status != 409:
                    raise
        # Exists (maybe edited by someone): put our data and label back, keep the rest.
        await self._api.merge_patch(
            f"{path}/{CONFIG_MAP}", {"metadata": {"labels": dict(LABEL)}, "data": {DATA_KEY: root}}
        )
        log.info("root certificate restored", extra={"namespace": namespace})

    # What the watches report.
    def _namespaces_listed(self, items: list[dict[str, Any]]) -> None:
        self._namespaces.intersection_update(_names(items))
        for item in items:
            self._namespace_event("ADDED", item)

    def _namespace_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if not name:
            return
        if kind == "DELETED" or metadata.get("deletionTimestamp"):
            self._namespaces.discard(name)
            return
        self._namespaces.add(name)
        self._enqueue(name)

    def _config_maps_listed(self, items: list[dict[str, Any]]) -> None:
        present = {str((item.get("metadata") or {}).get("namespace")) for item in items}
        for namespace in [n for n in self._config_maps if n not in present]:
            self._config_map_event("DELETED", {"metadata": {"namespace": namespace}})
        for item in items:
            self._config_map_event("ADDED", item)

    def _config_map_event(self, kind: str, obj: Mapping[str, Any]) -> None:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        if not namespace:
            return
        self._config_maps[namespace] = None if kind == "DELETED" else dict(obj)
        if not is_current(self._config_maps[namespace], self._root_pem()):
            self._enqueue(namespace)


def _names(items: list[dict[str, Any]]) -> set[str]:
    return {str((item.get("metadata") or {}).get("name")) for item in items}
