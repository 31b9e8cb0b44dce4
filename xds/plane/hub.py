"""The config process's end of the commit stream: a Unix socket serving processes read.

Each serving process that connects gets a snapshot, then every model change and every
commit, in the order they happened here. A message is encoded once and the same bytes
are written to every serving process. The hub listens before the first build: a
serving process that connects then gets the model at once and the store after the
build (the two halves of a snapshot), so it unpickles the model while this process
translates. A serving process that falls far behind (its unread bytes pass
``max_backlog``) is disconnected: it reconnects and converges from a
fresh snapshot instead of making this process hold an ever longer queue for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xds.model.mesh import ChangeSet, MeshStore
from xds.plane import commits
from xds.plane.pipeline import PushHistory, PushRecord
from xds.serving.store import ConfigStore

log = logging.getLogger("xds.hub")

MAX_BACKLOG = 256 << 20
_HELLO_SECONDS = 5.0


class CommitHub:
    def __init__(
        self,
        path: Path,
        mesh: MeshStore,
        store: ConfigStore,
        history: PushHistory,
        *,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self.path = path
        self._mesh = mesh
        self._store = store
        self._history = history
        self._max_backlog = max_backlog
        self._peers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.AbstractServer | None = None
        # Shared by processes connecting together; by whether it leaves the model out.
        self._snapshots: dict[bool, bytes] = {}
        # The model this process was forked with (see ``commits.Hello``).
        self._forked_generation = mesh.generation
        self._source_synced = True
        self._unbuilt: set[asyncio.StreamWriter] = set()  # sent the model half only
        self._joined = asyncio.Event()

    async def start(self) -> None:
        """Listen (before or after the first full build)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a config process that was killed
        self._server = await asyncio.start_unix_server(self._connected, path=str(self.path))
        os.chmod(self.path, 0o600)
        log.info("commit stream open", extra={"path": str(self.path)})

    async def settled(self, expected: int, within: float) -> None:
        """Until ``expected`` serving processes are connected and have read what was
        written to them (or ``within`` seconds): call before a long synchronous step,
        which would hold the writes back."""

        async def settle() -> None:
            while len(self._peers) < expected:
                self._joined.clear()
                await self._joined.wait()
            await asyncio.gather(*(peer.drain() for peer in self._peers), return_exceptions=True)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settle(), within)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers):
            peer.close()
        self._peers.clear()
        if self._handlers:  # each ends on its connection's EOF
            await asyncio.wait(self._handlers, timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- what the control plane tells us ----------------------------------------------

    def mesh_changed(self, changes: ChangeSet) -> None:
        self._snapshots.clear()
        if self._peers:
            self._send(commits.encode(commits.mesh_changes(self._mesh, changes)))

    def published(
        self,
        touched: Mapping[str, Mapping[str, frozenset[str]]],
        origin: float,
        record: PushRecord,
    ) -> None:
        self._snapshots.clear()
        unbuilt, self._unbuilt = self._unbuilt & self._peers, set()
        if unbuilt:
            self._send(self._snapshot_frame(model=False), unbuilt)
        if self._peers - unbuilt:
            frame = commits.encode(commits.commit_of(self._store, touched, origin, record))
            self._send(frame, self._peers - unbuilt)

    def source_health(self, synced: bool) -> None:
        """The source failed (False) or has synced again (True)."""
        self._snapshots.clear()
        self._source_synced = synced
        if self._peers:
            self._send(commits.encode(commits.SourceHealth(synced)))

    # -- serving processes ------------------------------------------------------------

    async def _hello(self, reader: asyncio.StreamReader) -> commits.Hello | None:
        """A serving process's first frame (None if it does not come in time: it is then
        sent everything)."""
        decoder = commits.Decoder()
        try:
            async with asyncio.timeout(_HELLO_SECONDS):
                while data := await reader.read(4096):
                    for message in decoder.feed(data):
                        return message if isinstance(message, commits.Hello) else None
        except (TimeoutError, commits.FrameError, ConnectionError):
            pass
        return None

    def _keeps_model(self, hello: commits.Hello | None) -> bool:
        """Whether the peer holds this process's model already: both still hold the
        model the parent read before forking them."""
        return (
            hello is not None
            and hello.forked_model is not None
            and hello.forked_model == self._forked_generation == self._mesh.generation
        )

    @property
    def _built(self) -> bool:
        """Whether the first full build is in the store."""
        return self._history.rebuilds > 0

    def _snapshot_frame(self, *, model: bool = True) -> bytes:
        return commits.encode(
            commits.snapshot_of(
                self._mesh,
                self._store,
                self._history.rebuilds,
                self._history.last,
                self._source_synced,
                model=model,
                built=self._built,
            )
        )

    def _send(self, frame: bytes, peers: set[asyncio.StreamWriter] | None = None) -> None:
        for peer in list(self._peers if peers is None else peers):
            if peer.transport.get_write_buffer_size() > self._max_backlog:
                log.warning(
                    "a serving process is too far behind; it will resync",
                    extra={"backlog_bytes": peer.transport.get_write_buffer_size()},
                )
                self._peers.discard(peer)
                peer.transport.abort()
                continue
            peer.write(frame)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        model = not self._keeps_model(await self._hello(reader))
        if model not in self._snapshots:
            self._snapshots[model] = self._snapshot_frame(model=model)
        # Snapshot and registration in one step: nothing can be published in between.
        writer.write(self._snapshots[model])
        self._peers.add(writer)
        if not self._built:
            self._unbuilt.add(writer)
        self._joined.set()
        log.info("serving process connected", extra={"serving_processes": len(self._peers)})
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        try:
            # Nothing comes after the Hello: reading only tells us when one is gone.
            while await reader.read(4096):
                pass
        except ConnectionError:
            pass
        finally:
            self._handlers.discard(handler)
            self._peers.discard(writer)
            self._unbuilt.discard(writer)
            writer.close()
            log.info("serving process disconnected", extra={"serving_processes": len(self._peers)})
