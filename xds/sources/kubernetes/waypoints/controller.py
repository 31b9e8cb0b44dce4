"""Keeps each ``istio-waypoint`` Gateway's objects and status in step with the cluster.

Runs on the leader only. Watches (raw JSON, not the mesh model: it needs
``generation``, ``uid`` and status, and writes them back):

- Gateways and GatewayClasses;
- the ServiceAccounts, Deployments and Services we made, selected by the
  ``gateway.istio.io/managed`` label, so an object deleted or edited by hand
  is put back.

Each event queues the Gateway it concerns; reconciling one Gateway

1. server-side applies its objects (``objects.desired_objects``) as field
   manager ``istio.io/gateway-controller``, but only when what we would apply,
   or the object's resourceVersion, differs from our last apply: the watch
   event our own write causes is not a reason to write again;
2. deletes the objects it owned that are not desired any more (Gateway
   deleted, class changed, name override changed). Owner references let the
   cluster's garbage collector do the same; doing it here does not depend on
   that collector running;
3. writes ``status`` when it would change (``status.gateway_status``).

A Gateway whose ``parametersRef`` cannot be used (no such ConfigMap, an overlay
that is not YAML) keeps the objects it has, and says why in ``Accepted``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.sources.kubernetes.reflector import Backoff, Callbacks, ListWatch
from xds.sources.kubernetes.waypoints import objects, status
from xds.sources.kubernetes.workqueue import WorkQueue
from xds.translate.waypoint.bootstrap import GATEWAY_NAME_LABEL, MANAGED_LABEL

log = logging.getLogger("xds.kube")

GATEWAYS: Final = "/apis/gateway.networking.k8s.io/v1/gateways"
GATEWAY_CLASSES: Final = "/apis/gateway.networking.k8s.io/v1/gatewayclasses"
OWNED_KINDS: Final = {
    "ServiceAccount": "/api/v1/{namespace}serviceaccounts",
    "Deployment": "/apis/apps/v1/{namespace}deployments",
    "Service": "/api/v1/{namespace}services",
}
ROUTE_KINDS: Final = frozenset({"HTTPRoute", "GRPCRoute"})
UNAVAILABLE_RETRY: Final = 30.0

GatewayKey = tuple[str, str]
ObjectKey = tuple[str, str, str]  # kind, namespace, name
AttachedRoutes = Callable[[str, str], int]


def collection(kind: str, namespace: str = "") -> str:
    return OWNED_KINDS[kind].format(namespace=f"namespaces/{namespace}/" if namespace else "")


def _key(obj: Mapping[str, Any]) -> GatewayKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WaypointController:
    def __init__(
        self,
        api: KubeApi,
        settings: objects.WaypointSettings,
        *,
        attached_routes: AttachedRoutes = lambda namespace, name: 0,
        backoff: Backoff | None = None,
        resync_interval: float = 60.0,
    ) -> None:
        self._api = api
        self._settings = settings
        self._attached_routes = attached_routes
        self._resync_interval = resync_interval
        self._gateways: dict[GatewayKey, dict[str, Any]] = {}
        self._owned: dict[ObjectKey, dict[str, Any]] = {}
        self._applied: dict[ObjectKey, tuple[str, str]] = {}  # (what we applied, its RV)
        self._queue: WorkQueue[GatewayKey] = WorkQueue(
            self._reconcile,
            what="reconcile a waypoint",
            describe=lambda key: {"gateway": f"{key[0]}/{key[1]}"},
            backoff=backoff,
        )
        self._class_queue: WorkQueue[str] = WorkQueue(
            self._reconcile_class,
            what="write GatewayClass status",
            describe=lambda name: {"gateway_class": name},
            backoff=backoff,
        )
        self._classes: dict[str, dict[str, Any]] = {}
        managed = [("labelSelector", f"{MANAGED_LABEL}={objects.MANAGED_VALUE}")]
        self._watches = [
            ListWatch(
                api,
                GATEWAYS,
                "gateways/waypoints",
                Callbacks(self._gateways_listed, self._gateway_event),
                backoff=backoff,
            ),
            ListWatch(
                api,
                GATEWAY_CLASSES,
                "gatewayclasses/waypoints",
                Callbacks(self._classes_listed, self._class_event),
                backoff=backoff,
            ),
            *(
                ListWatch(
                    api,
                    collection(kind),
                    f"{kind.lower()}s/waypoints",
                    Callbacks(partial(self.owned_listed, kind), partial(self.owned_event, kind)),
                    params=managed,
                    backoff=backoff,
                )
                for kind in OWNED_KINDS
            ),
        ]

    def mesh_changed(self, kinds: frozenset[str]) -> None:
        """Objects of ``kinds`` changed in the model; if routes did, the ``attachedRoutes``
        of every waypoint may have."""
        if not kinds.isdisjoint(ROUTE_KINDS):
            for key in self._gateways:
                self._queue.add(key)

    async def run(self) -> None:
        """Until cancelled. A watch the API server refuses (Gateway API CRDs not installed
        yet, RBAC) stops the controller with an error, and it is started again later."""
        while True:
            await self._run_once()
            await asyncio.sleep(UNAVAILABLE_RETRY)

    async def _run_once(self) -> None:
        tasks = [
            asyncio.create_task(watch.run(), name=f"watch-{watch.name}") for watch in self._watches
        ]
        tasks.append(asyncio.create_task(self._work(), name="waypoint-controller"))
        tasks.append(asyncio.create_task(self._class_queue.run(), name="gatewayclass-status"))
        tasks.append(asyncio.create_task(self._resync(), name="waypoint-resync"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    log.error(
                        "the waypoint controller stopped (check RBAC and the Gateway API "
                        "CRDs); starting it again later",
                        extra={"reason": str(task.exception()), "retry_in": UNAVAILABLE_RETRY},
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _work(self) -> None:
        # Owned objects first: reconciling before they are known would create twice.
        for watch in self._watches:
            await watch.synced.wait()
        for key in self._gateways:
            self._queue.add(key)
        for stale in {
            (k[1], obj["metadata"].get("labels", {}).get(GATEWAY_NAME_LABEL, ""))
            for k, obj in self._owned.items()
        }:
            self._queue.add(stale)
        await self._queue.run()

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            for key in self._gateways:
                self._queue.add(key)

    # -- reconciling -----------------------------------------------------------------

    async def _reconcile(self, key: GatewayKey) -> None:
        gateway = self._gateways.get(key)
        invalid: str | None = None
        if gateway is not None and (gateway.get("metadata") or {}).get("uid"):
            try:
                overlays = await self._parameters(gateway)
            except objects.InvalidParameters as error:
                # Keep what runs now; the status says what to fix.
                invalid = str(error)
                log.warning(
                    "waypoint parameters unusable; its objects are left as they are",
                    extra={"gateway": f"{key[0]}/{key[1]}", "reason": invalid},
                )
            else:
                await self._converge(
                    key, objects.desired_objects(gateway, self._settings, overlays)
                )
        else:
            await self._converge(key, [])
        if gateway is not None:
            await self._write_status(key, gateway, invalid)

    async def _converge(self, key: GatewayKey, desired: list[dict[str, Any]]) -> None:
        wanted = {
            (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]): obj
            for obj in desired
        }
        for object_key, obj in wanted.items():
            await self._apply(object_key, obj)
        for object_key in [
            k for k, obj in self._owned.items() if k not in wanted and _owned_by(obj, key)
        ]:
            await self._delete(object_key)

    async def _parameters(self, gateway: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The overlays of the Gateway's parameters ConfigMap (read at each reconcile: an
        edit takes effect at the next Gateway event or resync)."""
        name = objects.parameters_ref(gateway)
        if name is None:
            return {}
        namespace = gateway["metadata"]["namespace"]
        try:
            config_map = await self._api.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiError as error:
            if error.not_found:
                raise objects.InvalidParameters(
                    f'parametersRef targeting configmap "{namespace}/{name}", but configmap '
                    "does not exist"
                ) from None
            raise
        return objects.parse_overlays(config_map)

    async def _apply(self, key: ObjectKey, desired: dict[str, Any]) -> None:
        kind, namespace, name = key
        body = json.dumps(desired, sort_keys=True)
        observed = self._owned.get(key)
        observed_version = str((observed or {}).get("metadata", {}).get("resourceVersion") or "")
        if observed is not None and self._applied.get(key) == (body, observed_version):
            return
        applied = await self._api.apply(
            f"{collection(kind, namespace)}/{name}", desired, objects.FIELD_MANAGER
        )
        self._applied[key] = (body, str(applied.get("metadata", {}).get("resourceVersion")))
        log.info(
            "waypoint %s %s",
            kind,
            "created" if observed is None else "updated",
            extra={"object_kind": kind, "object_namespace": namespace, "object_name": name},
        )

    async def _delete(self, key: ObjectKey) -> None:
        kind, namespace, name = key
        try:
            await self._api.delete(f"{collection(kind, namespace)}/{name}")
        except ApiError as error:
            if not error.not_found:
                raise
        self._applied.pop(key, None)
        log.info(
            "waypoint %s deleted",
            kind,
            extra={"object_kind": kind, "object_namespace": namespace, "object_name": name},
        )

    async def _write_status(
        self, key: GatewayKey, gateway: dict[str, Any], invalid_parameters: str | None
    ) -> None:
        namespace, name = key
        service = self._owned.get(("Service", namespace, objects.deployment_name(gateway)))
        wanted = status.gateway_status(
            gateway,
            service,
            attached_routes=self._attached_routes(namespace, name),
            cluster_domain=self._settings.cluster_domain,
            now=_now(),
            invalid_parameters=invalid_parameters,
        )
        if not status.differs(gateway.get("status"), wanted):
            return
        await self._api.merge_patch(
            f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}/status",
            {"status": wanted},
        )
        log.info(
            "waypoint status written",
            extra={
                "gateway": f"{namespace}/{name}",
                "programmed": next(
                    (c["status"] for c in wanted["conditions"] if c["type"] == "Programmed"), ""
                ),
            },
        )

    async def _reconcile_class(self, name: str) -> None:
        gateway_class = self._classes.get(name)
        if gateway_class is None:
            return
        wanted = status.gateway_class_status(gateway_class, _now())
        if wanted is None or not status.differs(gateway_class.get("status"), wanted):
            return
        await self._api.merge_patch(f"{GATEWAY_CLASSES}/{name}/status", {"status": wanted})

    # -- what the watches report -----------------------------------------------------

    def _gateways_listed(self, items: list[dict[str, Any]]) -> None:
        listed = {_key(item): item for item in items if objects.is_waypoint(item)}
        for key in set(self._gateways) | set(listed):
            self._queue.add(key)
        self._gateways = listed

    def _gateway_event(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED" or not objects.is_waypoint(obj):
            if self._gateways.pop(key, None) is None:
                return
        else:
            self._gateways[key] = obj
        self._queue.add(key)

    def _classes_listed(self, items: list[dict[str, Any]]) -> None:
        self._classes = {_key(item)[1]: item for item in items}
        for name in self._classes:
            self._class_queue.add(name)

    def _class_event(self, kind: str, obj: dict[str, Any]) -> None:
        name = _key(obj)[1]
        if kind == "DELETED":
            self._classes.pop(name, None)
            return
        self._classes[name] = obj
        self._class_queue.add(name)

    def owned_listed(self, kind: str, items: list[dict[str, Any]]) -> None:
        for key in [k for k in self._owned if k[0] == kind]:
            self._owned.pop(key)
        for item in items:
            self.owned_event(kind, "ADDED", item)

    def owned_event(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        namespace, name = _key(obj)
        if event == "DELETED":
            self._owned.pop((kind, namespace, name), None)
        else:
            self._owned[(kind, namespace, name)] = obj
        gateway = ((obj.get("metadata") or {}).get("labels") or {}).get(GATEWAY_NAME_LABEL)
        if gateway:
            self._queue.add((namespace, str(gateway)))


def _owned_by(obj: Mapping[str, Any], gateway: GatewayKey) -> bool:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") == gateway[0] and any(
        ref.get("kind") == "Gateway" and ref.get("name") == gateway[1]
        for ref in meta.get("ownerReferences") or ()
    )
