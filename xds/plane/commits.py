"""The commit stream from the config process to the serving processes (sans-IO).

With ``xds serve --workers N`` one config process runs the sources, the model and
translation, and N serving processes hold the streams. What travels between them is
what serving needs and nothing it would have to compute again:

- ``MeshChanges``: the objects a source changed, so that each serving process keeps a
  replica of the model (binders, the CA's pod checks, SDS and the debug views read it);
- ``Commit``: what one rebuild published, as the resources themselves (names, versions,
  bytes; packing is deterministic, so the versions are the config process's own);
- ``SourceHealth``: whether the config process's source is synced (a failed source makes
  every process unready until it has synced again, as in a single process);
- ``Snapshot``: all of the above, first on every connection, so a serving process that
  starts, restarts or reconnects to a restarted config process converges by diff:
  only what really differs reaches its streams. While the config process's first build
  runs it comes in two halves: the model as soon as a serving process connects (so that
  unpickling it overlaps the translation), the store once the build is done.

A serving process says one thing first, ``Hello``: whether it still holds the model it
was forked with (a split server's parent reads the mesh before forking). If the config
process holds that same model too, the snapshot leaves the model out.

Frames are a 4-byte big-endian length and a pickle. Both ends are this program, over
a Unix socket in a directory only its user can enter. This module does no I/O: the
hub and the replica source feed it bytes, as h11 is fed by its callers.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from xds.model.mesh import ChangeSet, Mesh, MeshStore
from xds.model.meta import KubeObject, ObjectKey
from xds.plane.pipeline import PushRecord
from xds.resources import Resource
from xds.serving.store import ConfigStore

_LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 30  # far above a 10k-pod mesh's snapshot (~10 MB); a bound on garbage


@dataclass(frozen=True)
class TypeChange:
    """The resources of one type in one scope that a commit added, changed or removed."""

    scope: str
    type_url: str
    upserts: tuple[Resource, ...] = ()
    removals: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commit:
    changes: tuple[TypeChange, ...]
    origin: float  # when the change behind it first happened (CLOCK_MONOTONIC, host-wide)
    record: PushRecord | None = None


@dataclass(frozen=True)
class MeshChanges:
    upserts: tuple[KubeObject, ...] = ()
    deletes: tuple[ObjectKey, ...] = ()


@dataclass(frozen=True)
class SourceHealth:
    synced: bool


@dataclass(frozen=True)
class Snapshot:
    # None: the model as the previous snapshot (its first half) left it.
    objects: tuple[KubeObject, ...] | None
    # Upserts only, the whole content of each table. None: not built yet (a first half).
    resources: tuple[TypeChange, ...] | None
    rebuilds: int = 0
    record: PushRecord | None = None
    synced: bool = True


@dataclass(frozen=True)
class Hello:
    # The generation of the model it was forked with, if it holds it untouched.
    forked_model: int | None = None


Message = Snapshot | MeshChanges | Commit | SourceHealth | Hello


def encode(message: Message) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


class FrameError(ValueError):
    """The byte stream is not a commit stream (a bad length or an unreadable frame)."""


class Decoder:
    """Bytes in (any split), messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Message]:
        self._buffer += data
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes is over the {MAX_FRAME} limit")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                return
            body = bytes(self._buffer[_LENGTH.size : end])
            del self._buffer[:end]
            try:
                message = pickle.loads(body)
            except Exception as error:
                raise FrameError(f"unreadable frame: {error}") from None
            if not isinstance(message, Snapshot | MeshChanges | Commit | SourceHealth | Hello):
                raise FrameError(f"unexpected frame: {type(message).__name__}")
            yield message


# -- the config process's side ---------------------------------------------------------


def mesh_changes(mesh: Mesh, changes: ChangeSet) -> MeshChanges:
    """What a replica needs to make the same change: the new objects and deleted keys."""
    upserts = []
    for key in changes.added | changes.updated:
        obj = mesh.get_by_key(key)
        if obj is not None:
            upserts.append(obj)
    return MeshChanges(tuple(upserts), tuple(changes.deleted))


def commit_of(
    store: ConfigStore,
    touched: Mapping[str, Mapping[str, frozenset[str]]],
    origin: float,
    record: PushRecord | None = None,
) -> Commit:
    """A commit of ``store`` (what ``ConfigStore.commit`` returned) as resources."""
    changes = []
    for scope, by_type in touched.items():
        for type_url, names in by_type.items():
            table = store.table(scope, type_url)
            present = {} if table is None else table.resources
            upserts = tuple(present[name] for name in sorted(names) if name in present)
            removals = tuple(sorted(name for name in names if name not in present))
            changes.append(TypeChange(scope, type_url, upserts, removals))
    return Commit(tuple(changes), origin, record)


def snapshot_of(
    mesh: MeshStore,
    store: ConfigStore,
    rebuilds: int = 0,
    record: PushRecord | None = None,
    synced: bool = True,
    *,
    model: bool = True,
    built: bool = True,
) -> Snapshot:
    """Everything; or a half: ``built=False`` the model alone, ``model=False`` the store
    alone (see ``Snapshot``)."""
    tables = []
    if built:
        for scope in store.scopes():
            for type_url in store.types(scope):
                table = store.table(scope, type_url)
                if table is not None and table.resources:
                    tables.append(TypeChange(scope, type_url, tuple(table.resources.values())))
    return Snapshot(
        tuple(mesh.all_objects()) if model else None,
        tuple(tables) if built else None,
        rebuilds,
        record,
        synced,
    )


# -- a serving process's side ----------------------------------------------------------


@dataclass
class Replica:
    """Applies the stream to a serving process's model and store.

    The store also holds what the serving process writes itself (its waypoints' SDS
    key pairs): a snapshot replaces only the tables that came from the stream."""

    mesh: MeshStore
    store: ConfigStore
    rebuilds: int = 0
    last: PushRecord | None = None
    source_synced: bool = False
    _remote: set[tuple[str, str]] = field(default_factory=set)
    _forked_generation: int = -1

    def __post_init__(self) -> None:
        self._forked_generation = self.mesh.generation

    def hello(self) -> Hello:
        """What to say first on each connection."""
        untouched = self.mesh.generation == self._forked_generation
        return Hello(self.mesh.generation if untouched else None)

    def apply(self, message: Message) -> ChangeSet | None:
        """Apply one message; returns the model's change set (None for a commit)."""
        if isinstance(message, Hello):
            raise FrameError("a Hello is for the config process")
        if isinstance(message, MeshChanges):
            return self.mesh.apply(message.upserts, message.deletes)
        if isinstance(message, SourceHealth):
            self.source_synced = message.synced
            return None
        if isinstance(message, Commit):
            self._write(message.changes)
            self.store.commit(message.origin)
            if message.record is not None:
                self.rebuilds += 1
                self.last = message.record
            return None
        return self._replace(message)

    def _replace(self, snapshot: Snapshot) -> ChangeSet:
        changes = ChangeSet()
        if snapshot.objects is not None:
            wanted = {obj.key for obj in snapshot.objects}
            held = self.mesh.keys()
            stale = [key for key in held if key not in wanted]
            changes = self.mesh.apply(snapshot.objects, stale)
        if snapshot.resources is not None:
            tables = {(t.scope, t.type_url) for t in snapshot.resources}
            for scope, type_url in self._remote - tables:
                self.store.replace(scope, type_url, ())
            for table in snapshot.resources:
                self.store.replace(table.scope, table.type_url, table.upserts)
            self._remote = tables
            self.store.commit()
        self.rebuilds, self.last = snapshot.rebuilds, snapshot.record
        self.source_synced = snapshot.synced
        return changes

    def _write(self, changes: Iterable[TypeChange]) -> None:
        for change in changes:
            self.store.upsert(change.scope, change.upserts)
            self.store.remove(change.scope, change.type_url, change.removals)
            self._remote.add((change.scope, change.type_url))
