"""A serving process's config source: the config process's commit stream.

It plays the part a file or Kubernetes source plays in a single process (``synced``
once a snapshot with the store is applied, ``on_change`` after each model change) but
also writes the resources the config process translated straight into the store: a
serving process translates nothing.

When the config process goes away (restarted by the supervisor), the streams keep the
last config, as istiod's do when the API server is unreachable; on reconnection the
snapshot is applied as a diff, so proxies are only sent what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from xds.model.mesh import MeshStore
from xds.plane import commits, metrics
from xds.plane.pipeline import PushRecord
from xds.serving.store import ConfigStore
from xds.sources.base import OnChange

log = logging.getLogger("xds.replica")

_READ_SIZE = 1 << 20


class ReplicaSource:
    def __init__(
        self,
        path: Path,
        mesh: MeshStore,
        store: ConfigStore,
        on_change: OnChange,
        *,
        on_health: Callable[[bool], None] | None = None,
        retry_interval: float = 0.05,
    ) -> None:
        """``on_health``: told when the config process's source fails or has synced
        again (after the first snapshot)."""
        self.path = path
        self.replica = commits.Replica(mesh, store)
        self._on_change = on_change
        self._on_health = on_health
        self._retry = retry_interval
        self._synced = asyncio.Event()

    @property
    def synced(self) -> asyncio.Event:
        return self._synced

    @property
    def rebuilds(self) -> int:
        return self.replica.rebuilds

    @property
    def last(self) -> PushRecord | None:
        return self.replica.last

    async def run(self) -> None:
        waiting_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.path))
            except OSError:
                # Not listening yet (starting, or restarting after a failure).
                if waiting_since is None:
                    waiting_since = loop.time()
                elif self._synced.is_set() and loop.time() - waiting_since > 5:
                    log.warning("config process still away; serving the last config")
                    waiting_since = loop.time()
                await asyncio.sleep(self._retry)
                continue
            waiting_since = None
            try:
                writer.write(commits.encode(self.replica.hello()))
                await self._follow(reader)
            except commits.FrameError as error:
                log.error("bad commit stream; reconnecting", extra={"reason": str(error)})
            except ConnectionError:
                pass
            finally:
                writer.close()
            if self._synced.is_set():
                # A restart takes a second; a warning is for one that does not come back.
                log.info("config process gone; serving the last config until it is back")

    async def _follow(self, reader: asyncio.StreamReader) -> None:
        decoder = commits.Decoder()
        while data := await reader.read(_READ_SIZE):
            for message in decoder.feed(data):
                self._apply(message)

    @property
    def source_synced(self) -> bool:
        """Whether the config process's own source is synced (as of its last word)."""
        return self.replica.source_synced

    def _apply(self, message: commits.Message) -> None:
        healthy = self.replica.source_synced
        changes = self.replica.apply(message)
        if isinstance(message, commits.Commit) and message.record is not None:
            # The config process has no port: its pipeline's metrics are observed here.
            metrics.REBUILD_TIME.observe(message.record.seconds)
            if message.record.debounce_seconds is not None:
                metrics.DEBOUNCE_TIME.observe(message.record.debounce_seconds)
        if changes:
            self._on_change(changes)
        if (
            isinstance(message, commits.Snapshot)
            and message.resources is not None
            and not self._synced.is_set()
        ):
            log.info("synced from the config process", extra={"objects": len(self.replica.mesh)})
            self._synced.set()
        elif self.replica.source_synced != healthy and self._on_health is not None:
            self._on_health(self.replica.source_synced)
