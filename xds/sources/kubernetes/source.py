"""A Kubernetes API server as a config source: one reflector per modelled kind.

``synced`` is set once every kind the server has (and lets us read) has been
listed, so the first translation sees the whole mesh and no proxy gets a
partial one. Kinds whose CRD is not installed, or that RBAC forbids, are
logged once and looked for again every ``recheck_interval`` seconds: a CRD
installed later is watched from then on, without a restart. A CRD that is
deleted takes its objects with it once discovery confirms it (a single 404 does
not: a restarting API server answers that for its CRDs for a moment). If the API
server goes away, the last known state keeps being served and every reflector
retries with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from xds.model.mesh import MeshStore
from xds.model.meta import KubeObject, ObjectKey
from xds.sources.base import OnChange
from xds.sources.kubernetes import metrics
from xds.sources.kubernetes.api import ApiError, ClusterConfig, KubeApi, connect
from xds.sources.kubernetes.kinds import ApiResource, discover, watched_models
from xds.sources.kubernetes.leader import LeaseTiming
from xds.sources.kubernetes.reflector import (
    DEFAULT_WATCH_TIMEOUT,
    Backoff,
    Reflector,
    ResourceUnavailable,
)

log = logging.getLogger("xds.kube")

DEFAULT_RECHECK_INTERVAL: Final = 30.0


@dataclass
class KubernetesOptions:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    recheck_interval: float = DEFAULT_RECHECK_INTERVAL
    """How often kinds that are not installed (or not permitted) are looked for again."""
    watch_timeout: int = DEFAULT_WATCH_TIMEOUT
    backoff: Backoff = field(default_factory=Backoff)
    lease: LeaseTiming | None = field(default_factory=LeaseTiming)
    """Leader election for the replicas' cluster writes; ``None``: this process always
    writes (one replica only)."""
    manage_waypoints: bool = True
    """Create and own the objects of ``istio-waypoint`` Gateways, and write their status."""
    waypoint_image: str = ""
    """The Envoy image of waypoint Deployments; empty: the default stock Envoy."""


class KubernetesSource:
    def __init__(
        self,
        options: KubernetesOptions,
        store: MeshStore,
        on_change: OnChange,
        *,
        api: KubeApi | None = None,
        models: Sequence[type[KubeObject]] | None = None,
    ) -> None:
        self.options = options
        self.synced = asyncio.Event()
        self._store = store
        self._on_change = on_change
        self._api = api
        self._models = tuple(models if models is not None else watched_models())
        self._reflectors: dict[type[KubeObject], Reflector] = {}
        self._tasks: dict[type[KubeObject], asyncio.Task[None]] = {}
        self._missing: set[type[KubeObject]] = set()
        self._forbidden: set[type[KubeObject]] = set()
        self._vanishing: set[type[KubeObject]] = set()
        self._reported: set[tuple[type[KubeObject], str]] = set()

    @property
    def api(self) -> KubeApi:
        if self._api is None:
            raise RuntimeError("the Kubernetes source has not connected yet")
        return self._api

    @property
    def unavailable(self) -> dict[str, list[str]]:
        return {
            "missing": sorted(m.kind for m in self._missing),
            "forbidden": sorted(m.kind for m in self._forbidden),
        }

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def connect(self) -> KubeApi:
        if self._api is None:
            self._api = await connect(self.options.cluster)
            log.info(
                "connecting to the Kubernetes API",
                extra={"server": self._api.host, "via": self.options.cluster.describe()},
            )
        return self._api

    async def run(self) -> None:
        """List and watch until cancelled; see the module docstring."""
        await self.connect()
        try:
            await self._discover(self._models, initial=True)
            await self._wait_synced()
            self.synced.set()
            while True:
                await asyncio.sleep(self.options.recheck_interval)
                pending = self._missing | self._forbidden
                if pending:
                    await self._discover(pending, initial=False)
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            self._tasks.clear()

    async def _discover(self, models: Iterable[type[KubeObject]], *, initial: bool) -> None:
        models = tuple(models)
        failures = 0
        while True:
            try:
                found, missing = await discover(self.api, models)
                break
            except ApiError as error:
                if not initial:  # try again at the next recheck
                    log.debug("discovery failed", extra={"reason": str(error)})
                    return
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "cannot reach the Kubernetes API; retrying",
                    extra={"reason": str(error), "failures": failures},
                )
                await asyncio.sleep(self.options.backoff.delay(failures))
        for model in missing:
            if model in self._vanishing:
                self._vanishing.discard(model)
                keys = self._keys(model)
                log.warning(
                    "kind %s no longer served (CRD deleted); dropping its objects",
                    model.kind,
                    extra={"kind": model.kind, "objects": len(keys)},
                )
                self._apply((), keys)
            self._note_unavailable(
                model,
                "missing",
                "not served by the API server (CRD not installed?); looking again periodically",
            )
            self._missing.add(model)
        for model, resource in found.items():
            self._missing.discard(model)
            self._forbidden.discard(model)
            self._vanishing.discard(model)  # served again: its list replaces what we had
            self._start(resource)
        self._update_gauges()

    def _start(self, resource: ApiResource) -> None:
        model = resource.model
        if model in self._tasks:
            return
        if (model, "missing") in self._reported or (model, "forbidden") in self._reported:
            log.info("now watching", extra={"resource": resource.name})
        reflector = Reflector(
            self.api,
            resource,
            self._apply,
            lambda: self._keys(model),
            watch_timeout=self.options.watch_timeout,
            backoff=self.options.backoff,
        )
        self._reflectors[model] = reflector
        self._tasks[model] = asyncio.create_task(
            self._supervise(reflector), name=f"watch-{resource.name}"
        )

    async def _supervise(self, reflector: Reflector) -> None:
        model = reflector.resource.model
        try:
            await reflector.run()
        except ResourceUnavailable as unavailable:
            self._reflectors.pop(model, None)
            self._tasks.pop(model, None)
            if unavailable.error.forbidden:
                # Keep what we had: losing read access is not the objects' deletion.
                self._forbidden.add(model)
                self._note_unavailable(
                    model,
                    "forbidden",
                    f"cannot list/watch {reflector.resource.name}: "
                    f"{unavailable.error.message or 'forbidden'}; check "
                    "the ClusterRole; looking again periodically",
                )
            else:
                # A 404 may be a CRD deleted, or an API server that has just started and does
                # not serve its CRDs yet: dropping the objects now could lift a DENY policy
                # for a moment. They go only if discovery confirms the kind gone at the next
                # recheck.
                self._missing.add(model)
                self._vanishing.add(model)
                log.warning(
                    "resource answers 404; keeping its objects until discovery confirms it is gone",
                    extra={"resource": reflector.resource.name},
                )
            self._update_gauges()

    def _note_unavailable(self, model: type[KubeObject], reason: str, message: str) -> None:
        if (model, reason) not in self._reported:
            self._reported.add((model, reason))
            log.warning(
                "kind %s not watched: %s",
                model.kind,
                message,
                extra={"kind": model.kind, "reason": reason},
            )

    def _update_gauges(self) -> None:
        metrics.UNAVAILABLE.labels("missing").set(len(self._missing))
        metrics.UNAVAILABLE.labels("forbidden").set(len(self._forbidden))

    async def _wait_synced(self) -> None:
        """Until every started reflector has listed once (or given up on its kind)."""
        while True:
            pending = [
                r for m, r in self._reflectors.items() if not r.synced.is_set() and m in self._tasks
            ]
            if not pending:
                return
            waits = [asyncio.create_task(r.synced.wait()) for r in pending]
            ends = [self._tasks[r.resource.model] for r in pending]
            try:
                await asyncio.wait([*waits, *ends], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    def _keys(self, model: type[KubeObject]) -> list[ObjectKey]:
        return [obj.key for obj in self._store.objects(model)]

    def _apply(self, upserts: Sequence[KubeObject], deletes: Sequence[ObjectKey]) -> None:
        if not upserts and not deletes:
            return
        changes = self._store.apply(upserts, deletes)
        if changes:
            self._on_change(changes)


async def load_once(options: KubernetesOptions, store: MeshStore, *, within: float = 60.0) -> None:
    """List every modelled kind once into ``store``, for one-shot commands.

    Raises ``TimeoutError`` when the cluster cannot be read within ``within`` seconds."""
    source = KubernetesSource(options, store, lambda changes: None)
    running = asyncio.create_task(source.run())
    synced = asyncio.create_task(source.synced.wait())
    try:
        async with asyncio.timeout(within):
            await asyncio.wait({running, synced}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()
    finally:
        for task in (running, synced):
            task.cancel()
        await asyncio.gather(running, synced, return_exceptions=True)
        await source.close()
