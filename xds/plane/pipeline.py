"""From model changes to published resources: debounce, translate, commit.

Sources apply changes to the ``MeshStore`` and hand the resulting change sets
here. After the debounce window the translators see the union of the changed
object keys, return resource updates (already serialized, once), and the
store (a ``ResourceWriter``) publishes them to the streams in one commit. The
pipeline knows nothing else of serving: it could run in a process of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from xds.model.mesh import ChangeSet, Mesh
from xds.plane import metrics
from xds.plane.debounce import Batch, Debouncer
from xds.plane.forked_build import ForkedBuild, ForkedBuildFailed
from xds.resources import ResourceWriter, Update
from xds.translate.base import Translator

log = logging.getLogger("xds.pipeline")


@dataclass(frozen=True)
class PushRecord:
    """One rebuild, as ``/debug/push_status`` shows the last one."""

    finished_at: float  # wall clock, time.time()
    full: bool  # everything rebuilt (start-up, or after a failed batch)
    objects: int | None  # changed objects; None for a full rebuild
    kinds: tuple[str, ...]  # kinds of the changed objects (empty for a full rebuild)
    scopes: tuple[str, ...]  # scopes whose resources changed
    seconds: float  # translate + commit
    debounce_seconds: float | None = None  # first event of the batch -> rebuild started


class PushHistory(Protocol):
    """What ``/debug/push_status`` reads: the pipeline's own, or a serving process's copy."""

    @property
    def rebuilds(self) -> int: ...

    @property
    def last(self) -> PushRecord | None: ...


Published = Callable[[Mapping[str, Mapping[str, frozenset[str]]], float, PushRecord], None]
"""Told after each rebuild: what the commit touched, its origin, and the record."""


class Pipeline:
    def __init__(
        self,
        mesh: Mesh,
        store: ResourceWriter,
        translators: Sequence[Translator],
        *,
        debounce_after: float = 0.1,
        debounce_max: float = 10.0,
    ) -> None:
        self.mesh = mesh
        self.store = store
        self.translators = list(translators)
        self.debouncer: Debouncer[ChangeSet] = Debouncer(
            self._rebuild, quiet=debounce_after, max_delay=debounce_max
        )
        self.rebuilds = 0
        self.last: PushRecord | None = None
        self._failed = False
        # Translators (by index) whose memo is in a forked child, and the (scope, type)
        # pairs that child's build published.
        self._cold: dict[int, set[tuple[str, str]]] = {}
        self._ahead: tuple[list[ForkedBuild], int] | None = None  # see fork_ahead
        # Set by the config process of ``xds serve --workers``: it hands each commit on
        # to the serving processes.
        self.on_published: Published | None = None

    def changed(self, changes: ChangeSet) -> None:
        """Source callback: the MeshStore has applied ``changes``."""
        if not changes:
            return
        metrics.count_events(changes)
        self.debouncer.add(changes)

    def rebuild(
        self,
        changes: ChangeSet | None,
        origin: float | None = None,
        debounce_seconds: float | None = None,
        *,
        fork: bool = False,
    ) -> int:
        """Translate and publish now; returns how many scopes were touched.

        ``fork`` (a full build only): every translator but the first runs in a forked
        child at the same time (see ``forked_build``, and ``fork_ahead``); those are then
        cold until ``warm`` or the next rebuild gives them a full build of their own."""
        started = time.monotonic()
        updates: list[Update] = []
        forked = self._forked_builds() if fork and changes is None else []
        try:
            for index in range(1 if forked else len(self.translators)):
                updates += self._translate(index, changes)
        except BaseException:
            for build in forked:
                build.discard()
            raise
        for index, build in enumerate(forked, start=1):
            try:
                child_updates = build.updates()
            except ForkedBuildFailed as error:
                log.warning("forked build failed; translating here", extra={"reason": str(error)})
                updates += self.translators[index].translate(self.mesh, None)
                continue
            updates += child_updates
            self._cold[index] = {(u.scope, u.type_url) for u in child_updates}
        # Only once every translator has succeeded: a failed rebuild leaves the store as
        # it was.
        self._apply(updates)
        return self._commit(changes, started, origin, debounce_seconds)

    def fork_ahead(self) -> None:
        """Start the forked part of the first build now, from the model as it is, while
        the caller goes on (syncing its sources); ``rebuild(None, fork=True)`` takes the
        children's work over if the model has not changed meanwhile."""
        builds = self._fork()
        if builds:
            self._ahead = (builds, self.mesh.generation)

    def _forked_builds(self) -> list[ForkedBuild]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            builds, generation = ahead
            if generation == self.mesh.generation:
                return builds
            for build in builds:
                build.discard()
        return self._fork()

    def _fork(self) -> list[ForkedBuild]:
        """A forked build of every translator but the first; none if a fork fails (out of
        processes or memory): this process then translates everything itself."""
        builds: list[ForkedBuild] = []
        try:
            for translator in self.translators[1:]:
                builds.append(ForkedBuild(translator, self.mesh))
        except OSError as error:
            for build in builds:
                build.discard()
            reason = str(error)
            log.warning("cannot fork the first build; translating here", extra={"reason": reason})
            return []
        return builds

    @property
    def cold(self) -> bool:
        """Some translator's first build ran in a forked child (see ``warm``)."""
        return bool(self._cold)

    def warm(self) -> int:
        """A full build of each cold translator, published as any rebuild (normally it
        changes nothing); returns how many scopes were touched."""
        if not self._cold:
            return 0
        started = time.monotonic()
        updates: list[Update] = []
        for index in sorted(self._cold):
            updates += self._translate(index, None)
        self._apply(updates)
        return self._commit(None, started, None, None)

    def _translate(self, index: int, changes: ChangeSet | None) -> list[Update]:
        """A cold translator's memo is elsewhere: it gets a full build, and what the
        forked build published that this one leaves out is emptied (a waypoint deleted
        meanwhile, which the translator, not knowing it, would not remove)."""
        translator = self.translators[index]
        forked = self._cold.get(index)
        if forked is None:
            return translator.translate(self.mesh, changes)
        updates = translator.translate(self.mesh, None)
        del self._cold[index]
        for scope, type_url in sorted(forked - {(u.scope, u.type_url) for u in updates}):
            updates.append(Update(scope, type_url, replace=True))
        return updates

    def _apply(self, updates: list[Update]) -> None:
        for update in updates:
            if update.replace:
                self.store.replace(update.scope, update.type_url, update.upserts)
            else:
                self.store.upsert(update.scope, update.upserts)
                self.store.remove(update.scope, update.type_url, update.removals)

    def _commit(
        self,
        changes: ChangeSet | None,
        started: float,
        origin: float | None,
        debounce_seconds: float | None,
    ) -> int:
        translated = time.monotonic()
        metrics.REBUILD_TIME.observe(translated - started)
        if origin is None:
            origin = started
        touched = self.store.commit(origin)
        self.rebuilds += 1
        self.last = PushRecord(
            time.time(),
            changes is None,
            None if changes is None else len(changes.keys),
            () if changes is None else tuple(sorted(changes.kinds)),
            tuple(sorted(touched)),
            time.monotonic() - started,
            debounce_seconds,
        )
        if self.on_published is not None:
            self.on_published(touched, origin, self.last)
        log.debug(
            "rebuilt",
            extra={
                "objects": "all" if changes is None else len(changes.keys),
                "scopes": len(touched),
                "ms": round((translated - started) * 1000, 1),
            },
        )
        return len(touched)

    async def run(self) -> None:
        await self.debouncer.run()

    async def _rebuild(self, batch: Batch[ChangeSet]) -> None:
        metrics.DEBOUNCE_TIME.observe(batch.debounce_seconds)
        merged = batch.events[0]
        for later in batch.events[1:]:
            merged = merged.merge(later)
        try:
            # After a failure the changed keys of that batch are lost, so the
            # next batch rebuilds everything.
            self.rebuild(
                None if self._failed else merged,
                origin=batch.first_event_at,
                debounce_seconds=batch.debounce_seconds,
            )
            self._failed = False
        except Exception:
            # A translator bug must not take the whole control plane down: the
            # last good resources stay published and the next change retries.
            self._failed = True
            log.exception("rebuild failed", extra={"objects": len(merged.keys)})
