"""List then watch one API collection (``ListWatch``); keep the mesh store in step
with one modelled kind (``Reflector``).

The loop is client-go's reflector, reduced to what a control plane needs:

- list (paged) and apply the difference with what the store holds of this
  kind: objects not listed any more are deleted, unchanged ones cost nothing
  (``MeshStore.apply`` compares values);
- watch from the list's resourceVersion with bookmarks, applying each event,
  and resume from the last resourceVersion seen when the watch ends or the
  connection drops, so no event is lost (a replayed one is a no-op);
- on ``410 Gone`` (the resourceVersion was compacted away) list again at once;
- on any other failure keep what is served, back off with jitter, retry;
- on ``403``/``404`` give up and tell the source (RBAC, or the CRD is gone).

Objects are parsed on arrival by the same parser as manifest files; the raw
JSON is dropped. An object that does not parse is logged (naming the object
and the field) and its last good version is kept, as in file mode.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from xds.model.errors import ManifestError
from xds.model.meta import KubeObject, ObjectKey
from xds.model.parse import parse_with_notes
from xds.sources.ignored import IgnoredFields
from xds.sources.kubernetes import metrics
from xds.sources.kubernetes.api import ApiError, KubeApi, Params
from xds.sources.kubernetes.kinds import ApiResource, list_params
from xds.sources.metrics import CONFIG_ERRORS

log = logging.getLogger("xds.kube")

Apply = Callable[[Sequence[KubeObject], Sequence[ObjectKey]], None]
"""Apply upserts and deletions to the store (and report the change)."""
Known = Callable[[], Iterable[ObjectKey]]
"""The keys the store currently holds for this reflector's kind."""

DEFAULT_WATCH_TIMEOUT: Final = 300


class ResourceUnavailable(Exception):
    """The resource cannot be listed or watched: forbidden (403) or not served (404)."""

    def __init__(self, resource: ApiResource, error: ApiError) -> None:
        super().__init__(f"{resource.name}: {error}")
        self.resource = resource
        self.error = error


@dataclass
class Backoff:
    """Exponential backoff with full jitter: 0.2 s, 0.4 s, ... up to ``ceiling``."""

    base: float = 0.2
    ceiling: float = 30.0

    def delay(self, failures: int) -> float:
        return random.uniform(self.base / 2, min(self.ceiling, self.base * 2 ** (failures - 1)))


def object_key(resource: ApiResource, obj: Mapping[str, Any]) -> ObjectKey | None:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = metadata.get("namespace") if resource.namespaced else ""
    return ObjectKey(resource.model.kind, str(namespace or ""), name)


def deletions(known: Iterable[ObjectKey], listed: Iterable[ObjectKey]) -> list[ObjectKey]:
    """What a fresh list no longer has: the store's keys that were not listed."""
    present = set(listed)
    return [key for key in known if key not in present]


class Handler(Protocol):
    """What a list and a watch event mean to the owner of a ``ListWatch``."""

    def listed(self, items: list[dict[str, Any]]) -> None:
        """The complete current state (after a first list, or a re-list after 410)."""

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        """One ADDED, MODIFIED or DELETED event, in order."""


@dataclass(frozen=True)
class Callbacks:
    """A ``Handler`` made of two functions."""

    listed: Callable[[list[dict[str, Any]]], None]
    event: Callable[[str, dict[str, Any]], None]


class ListWatch:
    """The list-then-watch loop for one collection, feeding a ``Handler``."""

    def __init__(
        self,
        api: KubeApi,
        path: str,
        name: str,
        handler: Handler,
        *,
        params: Params = (),
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.name = name
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._handler = handler
        self._params = tuple(params)
        self._watch_timeout = watch_timeout
        self._backoff = backoff or Backoff()

    async def run(self) -> None:
        """Until cancelled; raises ``ApiError`` for 403 and 404 (not retried here)."""
        failures = 0
        while True:
            try:
                if not self.resource_version:
                    items, self.resource_version = await self.api.list_all(
                        self.path, params=self._params
                    )
                    self._handler.listed(items)
                    self.synced.set()
                metrics.WATCH_UP.labels(self.name).set(1)
                await self._watch()
                failures = 0
            except ApiError as error:
                if error.forbidden or error.not_found:
                    metrics.WATCH_UP.labels(self.name).set(0)
                    raise
                if error.gone:
                    # Our resourceVersion was compacted away: only a new list can
                    # tell what changed meanwhile. No backoff, this is routine.
                    log.info(
                        "resourceVersion expired; listing again",
                        extra={"resource": self.name, "resource_version": self.resource_version},
                    )
                    metrics.RELISTS.labels(self.name).inc()
                    self.resource_version = ""
                    continue
                failures += 1
                self._failed(error.reason or "transport", str(error), failures)
            except Exception as error:  # a bug must not stop the watch for good
                failures += 1
                log.exception("watch failed unexpectedly", extra={"resource": self.name})
                self._failed(type(error).__name__, str(error), failures)
            if failures:
                await asyncio.sleep(self._backoff.delay(failures))

    def _failed(self, reason: str, message: str, failures: int) -> None:
        metrics.WATCH_UP.labels(self.name).set(0)
        metrics.WATCH_ERRORS.labels(self.name, reason).inc()
        # The first failure of a streak is a warning; the rest are noise.
        level = logging.WARNING if failures == 1 else logging.DEBUG
        log.log(
            level,
            "watch interrupted; serving the last known state and retrying",
            extra={"resource": self.name, "reason": message, "failures": failures},
        )

    async def _watch(self) -> None:
        # A little jitter keeps a fleet of watches from re-watching in lockstep.
        timeout = int(self._watch_timeout * random.uniform(1.0, 1.25))
        async for event in self.api.watch(
            self.path, self.resource_version, timeout, params=self._params
        ):
            kind = str(event.get("type"))
            obj = event.get("object") or {}
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._handler.event(kind, obj)
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)


class Reflector:
    """Keeps the mesh store's objects of one kind equal to the API server's."""

    def __init__(
        self,
        api: KubeApi,
        resource: ApiResource,
        apply: Apply,
        known: Known,
        *,
        watch_timeout: int = DEFAULT_WATCH_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        self.resource = resource
        self._apply = apply
        self._known = known
        self._invalid: dict[ObjectKey, str] = {}
        self._ignored = IgnoredFields(log)
        self._loop = ListWatch(
            api,
            resource.path,
            resource.name,
            self,
            params=list_params(resource.model),
            watch_timeout=watch_timeout,
            backoff=backoff,
        )

    @property
    def synced(self) -> asyncio.Event:
        return self._loop.synced

    @property
    def invalid(self) -> Mapping[ObjectKey, str]:
        """Objects that do not parse (their last good version, if any, is served)."""
        return dict(self._invalid)

    async def run(self) -> None:
        """Until cancelled; raises ``ResourceUnavailable`` on 403/404."""
        try:
            await self._loop.run()
        except ApiError as error:
            raise ResourceUnavailable(self.resource, error) from None

    def listed(self, items: list[dict[str, Any]]) -> None:
        upserts: list[KubeObject] = []
        listed: list[ObjectKey] = []
        for item in items:
            key, obj = self._parse(item)
            if key is not None:
                listed.append(key)  # an invalid object keeps its last good version
            if obj is not None:
                upserts.append(obj)
        gone = deletions(self._known(), listed)
        for key in gone:
            self._invalid.pop(key, None)
            self._ignored.forget(key)
        self._count_invalid()
        self._apply(upserts, gone)
        if not self.synced.is_set():
            log.info("synced", extra={"resource": self.resource.name, "objects": len(listed)})

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            key = object_key(self.resource, obj)
            if key is not None:
                self._invalid.pop(key, None)
                self._count_invalid()
                self._ignored.forget(key)
                self._apply((), (key,))
            return
        _, parsed = self._parse(obj)
        if parsed is not None:
            self._apply((parsed,), ())

    def _parse(self, item: dict[str, Any]) -> tuple[ObjectKey | None, KubeObject | None]:
        # List items of built-in kinds come without apiVersion and kind.
        item.setdefault("apiVersion", self.resource.group_version)
        item.setdefault("kind", self.resource.model.kind)
        key = object_key(self.resource, item)
        try:
            obj, ignored = parse_with_notes(item)
        except ManifestError as error:
            if key is not None and self._invalid.get(key) != str(error):
                self._invalid[key] = str(error)
                self._count_invalid()
                log.warning(
                    "invalid object skipped; its last good version is kept",
                    extra={
                        "object_kind": key.kind,
                        "object_namespace": key.namespace,
                        "object_name": key.name,
                        "field": error.field,
                        "reason": error.message,
                    },
                )
            return key, None
        if key is not None:
            if self._invalid.pop(key, None) is not None:
                self._count_invalid()
            self._ignored.note(key, ignored)
        return key, obj

    def _count_invalid(self) -> None:
        CONFIG_ERRORS.labels(f"kubernetes/{self.resource.name}").set(len(self._invalid))
