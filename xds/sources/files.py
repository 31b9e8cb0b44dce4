"""A directory of Kubernetes manifests as a config source, reloaded when files change.

Every ``*.yaml``/``*.yml``/``*.json`` file under the directory is read
(recursively; hidden files and directories are skipped, which also skips
the ``..data`` duplicates of a mounted ConfigMap). YAML files may hold many
documents, and any document may be a ``kind: List`` (or ``PodList`` ...) of
items. Kinds the model does not cover are skipped, not errors.

Reloads follow file system events (inotify through ``watchfiles``): a change
triggers a rescan within 20-40 ms (the events of a write and its rename together)
that reads only the files the events name (a directory or a hidden link among them
means the whole tree), and a whole scan every ``rescan_interval`` catches what
events cannot see (files behind symlinks that point out of the tree, network file
systems). Where events are not available (no inotify, the watch limit reached, or
``watch_events=False``) the directory is polled every ``poll_interval``; after the
directory has gone missing, it is polled until it is back, then watched again.
A rescan re-reads a file only when its mtime or size changed (or
its mtime is so recent that another same-sized write could hide in the same
timestamp tick), and re-parses it only when its content hash changed. The
merged result of all files is diffed against what this source served
before, so the store sees only objects that really changed; an object that
moves from one file to another in one poll is not deleted.

Invalid documents are reported (``errors``, and once each on the
``xds.file`` logger) and skipped, while the rest is served. An object whose
document becomes invalid keeps being served in its last good version: a
typo while editing should not take a workload's config away. It goes away
when the document is deleted or fixed. A file that stops being valid YAML
keeps all of its previously served objects for the same reason.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import pickle
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ParamSpec, TypeVar

import yaml
from watchfiles import awatch

from xds.cpus import usable_cpus
from xds.gc_pause import gc_paused
from xds.model.errors import ManifestError
from xds.model.mesh import MeshStore
from xds.model.meta import KubeObject, ObjectKey
from xds.model.parse import object_identity, parse_with_notes
from xds.sources import yaml_loader
from xds.sources.base import OnChange
from xds.sources.ignored import IgnoredFields
from xds.sources.metrics import CONFIG_ERRORS

log = logging.getLogger("xds.file")

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

# Files modified this recently are hashed on every poll even if mtime and size
# look unchanged: a second same-sized write within one mtime tick (coarse on
# some file systems) would otherwise go unnoticed.
_RACY_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class DocumentError:
    """An invalid document (or unreadable file) that was skipped.

    ``document_index`` is the 0-based position of the YAML document in the
    file (``None`` when the whole file could not be read); ``field`` is a path
    such as ``spec.ports[1].port``; ``kind``/``namespace``/``name`` identify
    the object when the document said so.
    """

    file: Path
    document_index: int | None
    message: str
    field: str = ""
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        parts = [str(self.file)]
        if self.document_index is not None:
            parts.append(f"document {self.document_index}")
        if self.kind or self.name:
            name = self.name or "<unnamed>"
            parts.append(
                f"{self.kind or '<unknown kind>'} "
                + (f"{self.namespace}/{name}" if self.namespace else name)
            )
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True, slots=True)
class SkippedDocument:
    """A document of a kind the model does not cover."""

    file: Path
    document_index: int
    api_version: str
    kind: str


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """What one file contributes: its objects (with the document each came from),
    the errors and skipped documents, and which documents were broken."""

    objects: Mapping[ObjectKey, KubeObject] = field(default_factory=dict)
    document_of: Mapping[ObjectKey, int] = field(default_factory=dict)
    errors: tuple[DocumentError, ...] = ()
    skipped: tuple[SkippedDocument, ...] = ()
    broken: tuple[tuple[int, ObjectKey | None], ...] = ()
    """(document index, key if known) of each invalid document."""
    unparseable: bool = False
    """The file is not valid YAML/JSON (from some document on, contents are unknown)."""
    ignored: Mapping[ObjectKey, tuple[str, ...]] = field(default_factory=dict)
    """Spec fields of an object that the model does not read (objects with some only)."""
    pieces: Mapping[bytes, tuple[tuple[_Outcome, ...], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """What each document of the file's YAML (by the digest of its text) parsed to: an
    edit re-parses only the documents whose text changed."""


def _expand_lists(document: object) -> Iterator[tuple[str, object]]:
    """The objects in a document: itself, or the items of a ``kind: List``."""
    if isinstance(document, Mapping):
        kind = document.get("kind")
        items = document.get("items")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
            for index, item in enumerate(items):
                yield f"items[{index}]", item
            return
    yield "", document


def _broken_key(error: ManifestError) -> ObjectKey | None:
    """The key of the object an invalid document was meant to be, when it says."""
    if not error.kind or not error.name:
        return None
    # The parser records the namespace (defaulted) of namespaced kinds before it
    # reads the name, and none for cluster-scoped kinds.
    return ObjectKey(error.kind, error.namespace or "", error.name)


def _documents(path: Path, data: bytes) -> Iterator[object]:
    text = data.decode("utf-8")
    if path.suffix == ".json":
        yield json.loads(text)
    else:
        yield from yaml_loader.load_all(text)


@dataclass(frozen=True, slots=True)
class _Parsed:
    prefix: str
    obj: KubeObject
    ignored: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Unmodelled:
    api_version: str
    kind: str


@dataclass(frozen=True, slots=True)
class _Invalid:
    """A document the parser refused (``key``: its object, when it said which)."""

    error: DocumentError  # with a placeholder file and index, set when assembled
    key: ObjectKey | None


_Outcome = _Parsed | _Unmodelled | _Invalid
_NOWHERE = Path()


def _read_document(document: object) -> tuple[_Outcome, ...]:
    """What one decoded document holds (a ``List``'s items one by one). Pure."""
    outcomes: list[_Outcome] = []
    if document is None:  # an empty document between two "---"
        return ()
    for prefix, item in _expand_lists(document):
        try:
            obj, ignored_fields = parse_with_notes(item)
        except ManifestError as error:
            field_path = ".".join(part for part in (prefix, error.field) if part)
            failure = DocumentError(
                _NOWHERE, 0, error.message, field_path, error.kind, error.namespace, error.name
            )
            outcomes.append(_Invalid(failure, _broken_key(error)))
            continue
        except (RecursionError, MemoryError, ValueError) as error:
            # Pathological input the parser was not written for (nesting thousands
            # deep...): this document's error, never the source's.
            message = f"cannot be parsed: {type(error).__name__}: {error}"
            outcomes.append(_Invalid(DocumentError(_NOWHERE, 0, message, prefix), None))
            continue
        if obj is None:
            kind, _, _ = object_identity(item)
            api_version = item.get("apiVersion") if isinstance(item, Mapping) else None
            outcomes.append(_Unmodelled(str(api_version or ""), kind or ""))
            continue
        outcomes.append(_Parsed(prefix, obj, ignored_fields))
    return tuple(outcomes)


# A line that starts a YAML document. At the start of a line "---" can be nothing else:
# the spec forbids it inside any scalar, so splitting there gives the file's documents.
_DOCUMENT_START = re.compile(rb"^---(?=[ \t\r\n]|$)", re.MULTILINE)
# Directives ("%YAML") and document ends ("...") change how documents are delimited:
# such a file is parsed whole.
_NOT_SPLIT = re.compile(rb"^(%|\.\.\.)", re.MULTILINE)


def _document_pieces(
    path: Path, data: bytes, previous: ManifestFile | None
) -> list[tuple[bytes, tuple[tuple[_Outcome, ...], ...]]] | None:
    """The file's YAML split at document starts, in order: each piece's digest and what
    its documents parsed to (taken from ``previous`` when the text is unchanged). None
    when the file is not split so (JSON, directives, or a piece that is not valid on its
    own: the whole file is parsed then, so that errors read as they always have)."""
    if path.suffix == ".json" or _NOT_SPLIT.search(data):
        return None
    starts = [match.start() for match in _DOCUMENT_START.finditer(data)]
    bounds = [0, *(start for start in starts if start > 0), len(data)]
    known = previous.pieces if previous is not None else {}
    pieces: list[tuple[bytes, tuple[tuple[_Outcome, ...], ...]]] = []
    parsed: dict[bytes, tuple[tuple[_Outcome, ...], ...]] = {}
    for begin, end in itertools.pairwise(bounds):
        text = data[begin:end]
        digest = hashlib.blake2b(text, digest_size=16).digest()
        outcomes = parsed.get(digest) or known.get(digest)
        if outcomes is None:
            try:
                decoded = list(yaml_loader.load_all(text.decode("utf-8")))
            except (yaml.YAMLError, UnicodeDecodeError, RecursionError, MemoryError, ValueError):
                return None
            outcomes = tuple(_read_document(document) for document in decoded)
        parsed[digest] = outcomes
        pieces.append((digest, outcomes))
    return pieces


def read_manifests(path: Path, data: bytes, previous: ManifestFile | None = None) -> ManifestFile:
    """Parse the content of one manifest file. Pure: no file system access.

    ``previous``: the file's last parse, whose unchanged documents are not parsed again
    (a pod change rewrites one document of a file of many)."""
    pieces = _document_pieces(path, data, previous)
    if pieces is None:
        return _read_whole(path, data)
    assembly = _Assembly(path)
    for _, documents in pieces:
        for outcomes in documents:
            assembly.add(outcomes)
    return replace(assembly.result(), pieces=dict(pieces))


class _Assembly:
    """Outcomes of documents, in file order, made into a ``ManifestFile``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = -1
        self.objects: dict[ObjectKey, KubeObject] = {}
        self.document_of: dict[ObjectKey, int] = {}
        self.errors: list[DocumentError] = []
        self.skipped: list[SkippedDocument] = []
        self.broken: list[tuple[int, ObjectKey | None]] = []
        self.ignored: dict[ObjectKey, tuple[str, ...]] = {}

    def add(self, outcomes: tuple[_Outcome, ...]) -> None:
        """The next document's outcomes."""
        self.index += 1
        index, path = self.index, self.path
        for outcome in outcomes:
            if isinstance(outcome, _Invalid):
                self.errors.append(replace(outcome.error, file=path, document_index=index))
                self.broken.append((index, outcome.key))
                continue
            if isinstance(outcome, _Unmodelled):
                self.skipped.append(SkippedDocument(path, index, outcome.api_version, outcome.kind))
                continue
            obj = outcome.obj
            if obj.key in self.objects:
                self.errors.append(
                    DocumentError(
                        path,
                        index,
                        f"duplicate of document {self.document_of[obj.key]}; ignored",
                        outcome.prefix,
                        obj.kind,
                        obj.namespace or None,
                        obj.name,
                    )
                )
                continue
            self.objects[obj.key] = obj
            self.document_of[obj.key] = index
            if outcome.ignored:
                self.ignored[obj.key] = outcome.ignored

    def result(self, *, unparseable: bool = False) -> ManifestFile:
        return ManifestFile(
            self.objects,
            self.document_of,
            tuple(self.errors),
            tuple(self.skipped),
            tuple(self.broken),
            unparseable=unparseable,
            ignored=self.ignored,
        )


def _read_whole(path: Path, data: bytes) -> ManifestFile:
    """Parse the whole file at once (JSON, or YAML that is not split by documents)."""
    assembly = _Assembly(path)
    try:
        for document in _documents(path, data):
            assembly.add(_read_document(document))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError, MemoryError, ValueError) as error:
        # ValueError covers JSONDecodeError and the integer-size limit (a 5,000-digit
        # number); RecursionError a document nested 200,000 deep.
        reason = (
            str(error) if isinstance(error, yaml.YAMLError | ValueError) else type(error).__name__
        )
        failure = DocumentError(path, max(assembly.index + 1, 0), f"invalid YAML/JSON: {reason}")
        assembly.errors.append(failure)
        return assembly.result(unparseable=True)
    return assembly.result()


def _keep_last_good(new: ManifestFile, old: ManifestFile | None) -> ManifestFile:
    """``new`` plus the previous version of objects whose documents are now broken."""
    if old is None or not (new.broken or new.unparseable):
        return new
    keep: set[ObjectKey] = set()
    if new.unparseable:
        keep.update(old.objects)
    for index, key in new.broken:
        if key is not None:
            keep.add(key)
        else:  # the broken document does not even say what it is: go by position
            keep.update(k for k, i in old.document_of.items() if i == index)
    keep = {key for key in keep if key in old.objects and key not in new.objects}
    if not keep:
        return new
    return replace(
        new,
        objects={**new.objects, **{key: old.objects[key] for key in keep}},
        document_of={**new.document_of, **{key: old.document_of[key] for key in keep}},
    )


@dataclass(frozen=True, slots=True)
class _FileState:
    mtime_ns: int
    size: int
    digest: bytes
    contents: ManifestFile


MAX_FILE_BYTES = 64 << 20

# Polls in a row that find nothing before file events take over again.
_QUIET_POLLS = 10
# Changes found this close together (by events) are a flow: polling takes over.
_FLOW_CHANGES = 3
_FLOW_SECONDS = 1.0


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Unusable(Exception):
    """A manifest path that is not read at all (the message says why)."""


def _manifest_paths(
    root: Path, known: Mapping[str, Path] | None = None
) -> tuple[list[Path], dict[Path, str]]:
    """Manifest files under ``root`` (or ``root`` itself if it is a file), sorted; and the
    directories that could not be listed, with the reason.

    ``known``: the ``Path`` objects of the previous scan by their text. A rescan runs
    every 0.1 s while changes flow, and building, sorting and hashing ~500 new ``Path``
    objects each time was most of its cost: paths are gathered and sorted as text, and
    only new ones become ``Path`` objects."""
    if root.is_file():
        return [root], {}
    if not root.is_dir():
        raise FileNotFoundError(f"config directory {root} does not exist")
    found: list[str] = []
    unreadable: dict[Path, str] = {}
    seen_dirs: set[tuple[int, int]] = set()

    def failed(error: OSError) -> None:
        unreadable[Path(error.filename)] = error.strerror or str(error)

    for directory, subdirectories, files in os.walk(root, onerror=failed, followlinks=True):
        info = os.stat(directory)
        if (info.st_dev, info.st_ino) in seen_dirs:  # a symlink loop
            subdirectories.clear()
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        found.extend(
            os.path.join(directory, name)
            for name in files
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES)
        )
    # By path components, as ``Path`` objects sort ("a/b" before "a-b").
    found.sort(key=_components)
    known = known or {}
    return [known.get(text) or Path(text) for text in found], unreadable


def _components(path: str) -> list[str]:
    return path.split(os.sep)


def _read_tree(root: Path, previous: Mapping[Path, _FileState]) -> dict[Path, _FileState]:
    """The state of every manifest file, reusing ``previous`` for unchanged files."""
    scan = _TreeScan.of(root, previous)
    return scan.finish(ParseInProgress(scan.to_parse, scan.previous_contents))


class _TreeScan:
    """A tree's files listed and read, and what ``previous`` already holds: the first half
    of ``_read_tree``; ``finish`` takes the parse of the files that changed."""

    def __init__(
        self,
        previous: Mapping[Path, _FileState],
        states: dict[Path, _FileState],
        changed: list[tuple[Path, bytes, _FileState]],
    ) -> None:
        """``states``: the files that need no parse; ``changed``: those that do, with
        their data and new state (contents to come)."""
        self._previous = previous
        self._states, self._changed = states, changed

    @classmethod
    def of(cls, root: Path, previous: Mapping[Path, _FileState]) -> _TreeScan:
        return cls(previous, *_scan_tree(root, previous))

    @property
    def to_parse(self) -> list[tuple[Path, bytes]]:
        return [(path, data) for path, data, _ in self._changed]

    @property
    def previous_contents(self) -> dict[Path, ManifestFile]:
        return {
            path: self._previous[path].contents
            for path, _, _ in self._changed
            if path in self._previous
        }

    def finish(self, parse: ParseInProgress) -> dict[Path, _FileState]:
        states = dict(self._states)
        for (path, _, state), parsed in zip(self._changed, parse.results(), strict=True):
            old = self._previous.get(path)
            contents = _keep_last_good(parsed, old.contents if old is not None else None)
            if contents.skipped:
                kinds = sorted({doc.kind for doc in contents.skipped})
                log.info(
                    "skipped documents of kinds that are not modelled",
                    extra={"file": str(path), "count": len(contents.skipped), "kinds": kinds},
                )
            states[path] = replace(state, contents=contents)
        return states


def _scan_tree(
    root: Path, previous: Mapping[Path, _FileState]
) -> tuple[dict[Path, _FileState], list[tuple[Path, bytes, _FileState]]]:
    """The states of the files that need no parse, and the files (with their new state,
    contents to come) that do."""
    states: dict[Path, _FileState] = {}
    now_ns = time.time_ns()
    paths, unreadable = _manifest_paths(root, {str(path): path for path in previous})
    # A directory we cannot list (permissions, I/O) is not an empty one: its files keep
    # serving what they held, or policies would silently vanish (fail open).
    for path, held in previous.items():
        for directory, reason in unreadable.items():
            if path.is_relative_to(directory):
                failure = DocumentError(
                    path,
                    None,
                    f"cannot read directory {directory}: {reason}; serving its last good objects",
                )
                states[path] = _FileState(-1, -1, b"", replace(held.contents, errors=(failure,)))
                break
    return states, _look_at_all(paths, previous, states, now_ns, trust_stat=True)


def _look_at_all(
    paths: Iterable[Path],
    previous: Mapping[Path, _FileState],
    states: dict[Path, _FileState],
    now_ns: int,
    *,
    trust_stat: bool,
) -> list[tuple[Path, bytes, _FileState]]:
    """``_look_at`` each path: its state goes into ``states`` (out of it when it is gone),
    or, when it must be parsed, into the list returned with its data."""
    changed: list[tuple[Path, bytes, _FileState]] = []
    for path in paths:
        state, data = _look_at(path, previous.get(path), now_ns, trust_stat=trust_stat)
        if data is not None:
            assert state is not None
            changed.append((path, data, state))
        elif state is not None:
            states[path] = state
        else:
            states.pop(path, None)
    return changed


def _look_at(
    path: Path, old: _FileState | None, now_ns: int, *, trust_stat: bool
) -> tuple[_FileState | None, bytes | None]:
    """One manifest file: ``(state, None)`` when it needs no parse (unchanged, or
    unreadable and serving what it held), ``(None, None)`` when it is gone, and ``(new
    state, data)`` when ``data`` must be parsed (its contents to come).

    ``trust_stat``: an unchanged mtime and size (not too recent) mean unchanged contents;
    a file system event says otherwise, so the file is read then."""
    try:
        info = path.stat()
        if (
            trust_stat
            and old is not None
            and old.mtime_ns == info.st_mtime_ns
            and old.size == info.st_size
            and now_ns - info.st_mtime_ns > _RACY_SECONDS * 1e9
        ):
            return old, None
        # Never open a FIFO or a device (a read would block or never end), nor read a
        # file of any size into memory.
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("not a regular file (a FIFO, device or socket?); skipped")
        if info.st_size > MAX_FILE_BYTES:
            raise _Unusable(
                f"{info.st_size} bytes, more than the {MAX_FILE_BYTES >> 20} "
                "MiB a manifest file may have; skipped"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None  # removed since it was listed: it is gone
    except (OSError, _Unusable) as error:
        # Unreadable for now (permissions, I/O): serve what it held before.
        reason = (
            str(error)
            if isinstance(error, _Unusable)
            else f"cannot read file: {error.strerror or error}"
        )
        contents = old.contents if old is not None else ManifestFile()
        failure = DocumentError(path, None, reason)
        return _FileState(-1, -1, b"", replace(contents, errors=(failure,))), None
    digest = hashlib.sha256(data).digest()
    if old is not None and old.digest == digest:
        return replace(old, mtime_ns=info.st_mtime_ns, size=info.st_size), None
    return _FileState(info.st_mtime_ns, info.st_size, digest, EMPTY), data


def _read_paths(
    root: Path, previous: Mapping[Path, _FileState], events: Iterable[str]
) -> dict[Path, _FileState] | None:
    """``previous`` with the manifest files that file events name read again (the
    events' paths, in any order, absolute or relative to the working directory). None
    when an event may concern more than files known by name: a directory appeared or
    went, something hidden that is not a plain file changed (a ConfigMap volume swaps its
    ``..data`` link), a path outside ``root``: the tree is scanned then."""
    if not root.is_dir():
        return None
    base = os.path.abspath(root)
    known = {str(path): path for path in previous}
    wanted: set[str] = set()
    for event in events:
        relative = os.path.relpath(os.path.abspath(event), base)
        if relative == os.curdir or relative == os.pardir or relative.startswith(_UP):
            return None
        text = os.path.normpath(os.path.join(root, relative))  # as ``str(Path)`` spells it
        if any(part.startswith(".") for part in relative.split(os.sep)):
            # Never read itself; a directory or a link there can change what visible
            # links point to.
            try:
                if not stat.S_ISREG(os.lstat(text).st_mode):
                    return None
            except FileNotFoundError:
                pass
            continue
        if os.path.isdir(text):
            return None
        if not text.endswith(MANIFEST_SUFFIXES):
            inside = text + os.sep
            if any(other.startswith(inside) for other in known):
                return None  # a directory that went: its files with it
            continue
        wanted.add(text)
    states = dict(previous)
    paths = [known.get(text) or Path(text) for text in sorted(wanted, key=_components)]
    changed = _look_at_all(paths, previous, states, time.time_ns(), trust_stat=False)
    scan = _TreeScan(previous, states, changed)
    files = scan.finish(ParseInProgress(scan.to_parse, scan.previous_contents))
    if files.keys() - previous.keys():  # new files: in the order a scan lists them
        files = {path: files[path] for path in sorted(files, key=lambda p: _components(str(p)))}
    return files


_UP = os.pardir + os.sep


EMPTY = ManifestFile()

# Parsing is most of a start (YAML above all): a large first load is spread over the
# cores, in processes (the GIL), started for the occasion and gone when it is done.
PARALLEL_MIN_BYTES = 2 << 20


class ParseInProgress:
    """``read_manifests`` of each (path, content), in order (``previous``: their last
    parse, see ``read_manifests``), started: in worker processes when there is enough to
    parse and more than one core, while the caller goes on; ``results`` waits for them
    (or parses here, if there are no workers).

    ``fork``: the workers are forked (they start at once, with everything imported)
    rather than spawned; only for a caller with no other thread and no gRPC object."""

    def __init__(
        self,
        files: Sequence[tuple[Path, bytes]],
        previous: Mapping[Path, ManifestFile] | None = None,
        *,
        fork: bool = False,
    ) -> None:
        self._files = files
        self._previous = previous or {}
        self._pool: ProcessPoolExecutor | None = None
        self._chunks: Iterator[list[tuple[int, ManifestFile]]] = iter(())
        cores = usable_cpus()
        size = sum(len(data) for _, data in files)
        if cores < 2 or size < PARALLEL_MIN_BYTES or len(files) < 4:
            return
        workers = min(cores, 8)
        # Chunks of similar size, a few per worker so that one slow chunk does not hold
        # up the end; each keeps its files' order, and the results are put back in order.
        chunks: list[list[tuple[int, Path, bytes]]] = [[] for _ in range(workers * 3)]
        loads = [0] * len(chunks)
        for index, (path, data) in sorted(enumerate(files), key=lambda item: -len(item[1][1])):
            lightest = loads.index(min(loads))
            chunks[lightest].append((index, path, data))
            loads[lightest] += len(data)
        try:
            # spawn unless told otherwise: a serving process has gRPC threads, which a
            # fork must not copy.
            context = multiprocessing.get_context("fork" if fork else "spawn")
            self._pool = ProcessPoolExecutor(workers, mp_context=context)
            self._chunks = self._pool.map(_read_chunk, [c for c in chunks if c])
        except OSError as error:
            self._fell_back(error)

    def results(self) -> list[ManifestFile]:
        pool, self._pool = self._pool, None
        if pool is not None:
            results: list[ManifestFile] = [EMPTY] * len(self._files)
            try:
                with pool:
                    for chunk in self._chunks:
                        for index, parsed in chunk:
                            results[index] = parsed
                return results
            except (OSError, BrokenProcessPool, pickle.PicklingError) as error:
                self._fell_back(error)
        previous = self._previous
        return [read_manifests(path, data, previous.get(path)) for path, data in self._files]

    def cancel(self) -> None:
        """Stop the workers; no results."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fell_back(self, error: Exception) -> None:
        log.warning(
            "parsing in worker processes failed; parsing here instead",
            extra={"reason": f"{type(error).__name__}: {error}"},
        )
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _read_chunk(chunk: list[tuple[int, Path, bytes]]) -> list[tuple[int, ManifestFile]]:
    with gc_paused():  # a worker process that only parses: see gc_pause
        return [(index, read_manifests(path, data)) for index, path, data in chunk]


def _duplicate(path: Path, contents: ManifestFile, key: ObjectKey, owner: Path) -> DocumentError:
    return DocumentError(
        path,
        contents.document_of.get(key),
        f"duplicate of the object in {owner}; ignored",
        kind=key.kind,
        namespace=key.namespace or None,
        name=key.name,
    )


class MergedObjects:
    """Every file's objects merged, kept up to date file by file: a key defined in several
    files is served from the first one (sorted), the others are reported as duplicates.
    After a reload only the keys of the files that changed are looked at again (a full
    merge walks every object of the mesh, ~10 ms for 12k objects)."""

    def __init__(self) -> None:
        self.served: dict[ObjectKey, KubeObject] = {}
        self._providers: dict[ObjectKey, list[Path]] = {}  # sorted: the first one wins
        self._contested: set[ObjectKey] = set()

    def update(
        self,
        files: Mapping[Path, _FileState],
        previous: Mapping[Path, _FileState],
        changed: Iterable[Path],
    ) -> tuple[list[KubeObject], list[ObjectKey]]:
        """Apply the files whose contents changed (or appeared, or went); returns the
        objects now served differently and the keys no longer served."""
        # Ordered: a first load serves objects in file order, then document order.
        affected: dict[ObjectKey, None] = {}
        for path in changed:
            old = previous.get(path)
            new = files.get(path)
            old_keys = old.contents.objects.keys() if old is not None else set()
            new_keys = new.contents.objects.keys() if new is not None else set()
            for key in old_keys - new_keys:
                paths = self._providers[key]
                paths.remove(path)
                if len(paths) < 2:
                    self._contested.discard(key)
            for key in new_keys - old_keys:
                paths = self._providers.setdefault(key, [])
                bisect.insort(paths, path)
                if len(paths) > 1:
                    self._contested.add(key)
            affected.update(dict.fromkeys(old_keys))
            affected.update(dict.fromkeys(new_keys))
        upserts: list[KubeObject] = []
        deletes: list[ObjectKey] = []
        for key in affected:
            providers = self._providers.get(key)
            if not providers:
                self._providers.pop(key, None)
                if self.served.pop(key, None) is not None:
                    deletes.append(key)
                continue
            obj = files[providers[0]].contents.objects[key]
            if self.served.get(key) is not obj:
                self.served[key] = obj
                upserts.append(obj)
        return upserts, deletes

    def owner(self, key: ObjectKey) -> Path:
        """The file whose object is served for ``key``."""
        return self._providers[key][0]

    def duplicates(self, files: Mapping[Path, _FileState]) -> list[DocumentError]:
        """The copies that are not served, in file order, then position in the file."""
        found: list[tuple[Path, int, DocumentError]] = []
        for key in self._contested:
            owner, *others = self._providers[key]
            for path in others:
                contents = files[path].contents
                position = list(contents.objects).index(key)
                found.append((path, position, _duplicate(path, contents, key, owner)))
        found.sort(key=lambda item: (item[0], item[1]))
        return [error for _, _, error in found]


def _all_errors(
    files: Mapping[Path, _FileState], duplicates: list[DocumentError]
) -> list[DocumentError]:
    with_errors = sorted(path for path, state in files.items() if state.contents.errors)
    errors = [error for path in with_errors for error in files[path].contents.errors]
    return errors + duplicates


def _merged(files: Mapping[Path, _FileState]) -> MergedObjects:
    merged = MergedObjects()
    merged.update(files, {}, sorted(files))
    return merged


def load_directory(path: Path) -> tuple[list[KubeObject], list[DocumentError]]:
    """Read a manifest directory (or file) once: the valid objects and the errors.

    For one-shot commands (``xds render``); no event loop needed. Raises
    ``FileNotFoundError`` when ``path`` does not exist.
    """
    files = _read_tree(path, {})
    merged = _merged(files)
    return list(merged.served.values()), _all_errors(files, merged.duplicates(files))


@dataclass(frozen=True)
class ParsedFiles:
    """What a ``PreloadInProgress`` read: each file's state and their objects merged, for a
    ``FileSource`` to start from (``parsed=``) as if it had read them itself."""

    files: Mapping[Path, _FileState]
    objects: MergedObjects


class PreloadInProgress:
    """Reading ``path`` once, to apply its objects to a store before any event loop.

    A split ``xds serve`` does this in the parent before it forks, so that every process
    starts with the model (shared copy-on-write) rather than the config process parsing
    it and sending it to each serving process. The config process's
    ``FileSource(parsed=...)`` then re-reads only what changed since. Errors are reported
    by that source, as on any load.

    The files are read, and the parse workers forked, at construction (which raises
    ``FileNotFoundError`` as ``load_directory`` does): the parent starts it as early as it
    can and imports the rest of the program while they parse. Start it only where no
    other thread and no gRPC object exists yet."""

    def __init__(self, path: Path) -> None:
        # Until finished: the results are unpickled here as they arrive, meanwhile.
        self._gc_paused = ExitStack()
        self._gc_paused.enter_context(gc_paused())
        try:
            scan = _TreeScan.of(path, {})
        except BaseException:
            self._gc_paused.close()
            raise
        # Both hold every file's bytes: dropped once finished (the caller may keep this).
        self._reading: tuple[_TreeScan, ParseInProgress] | None = (
            scan,
            ParseInProgress(scan.to_parse, fork=True),
        )

    def finish(self, store: MeshStore) -> ParsedFiles:
        """Wait for the parse, and apply the objects to ``store`` (once)."""
        if self._reading is None:
            raise RuntimeError("the preload was finished or cancelled already")
        scan, parse = self._reading
        self._reading = None
        with self._gc_paused:
            files = scan.finish(parse)
            merged = _merged(files)
            store.apply(list(merged.served.values()))
        return ParsedFiles(files, merged)

    def cancel(self) -> None:
        """Stop the parse workers, unless finished already."""
        if self._reading is not None:
            self._reading[1].cancel()
            self._reading = None
            self._gc_paused.close()


class FileSource:
    """Serves the manifests under ``directory`` into ``store``; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        store: MeshStore,
        on_change: OnChange,
        poll_interval: float = 0.5,
        *,
        watch_events: bool = True,
        rescan_interval: float = 2.0,
        parsed: ParsedFiles | None = None,
        loop_serves: bool = True,
    ) -> None:
        """``parsed``: what a ``PreloadInProgress`` read into ``store`` (the source takes it over):
        the first load is then a reload like any other, from that state, except that it
        reports every error and ignored field, as a first load does.

        ``loop_serves``: this process's event loop also serves clients. Rescans then read
        in a thread, so that the loop goes on serving meanwhile, and polling takes over
        from events while changes flow (their wake-ups would compete with serving). A
        process whose loop serves no one (the config process) reads on the loop and stays
        on events: a thread that stats every file gives up the interpreter at each call
        and waits for it again behind translation (ambient-churn: a change was applied
        177-205 ms after its write with the thread and polling, 134 ms on the loop
        following events, p50)."""
        self.directory = Path(directory)
        self.synced = asyncio.Event()
        self._store = store
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._watch_events = watch_events
        self._rescan_interval = rescan_interval
        self._loop_serves = loop_serves
        self._scanned_at = -math.inf  # the last whole scan (monotonic)
        self._missing = False
        self._files: dict[Path, _FileState] = dict(parsed.files) if parsed else {}
        self._objects = parsed.objects if parsed else MergedObjects()
        self._unreported = parsed is not None
        self._errors: list[DocumentError] = []
        self._ignored = IgnoredFields(log)

    @property
    def errors(self) -> list[DocumentError]:
        """Current problems: invalid documents, unreadable files, duplicates."""
        return list(self._errors)

    @property
    def skipped(self) -> list[SkippedDocument]:
        """Documents of kinds the model does not cover."""
        return [doc for path in sorted(self._files) for doc in self._files[path].contents.skipped]

    async def run(self) -> None:
        """Load everything, set ``synced``, then follow changes until cancelled.

        Raises ``FileNotFoundError`` if the directory is missing at start. If it
        disappears later, the last state keeps being served (a remount of a
        ConfigMap volume can briefly look like that).
        """
        await self.reload()
        self.synced.set()
        while True:
            if self._watch_events and not self._missing:
                await self._follow_events()
            # Changes are flowing (or events cannot be used): poll while they flow, and
            # go back to events after a second of polls that found nothing. Events cost
            # nothing while idle, but under steady writes their wake-ups compete with
            # serving for the interpreter (ambient-churn: p99 7.9 s following events,
            # 6.4 s polling). An occasional change is no flow: polling after each would
            # rescan the whole tree ten times for nothing (ambient-1k, a change every
            # 0.7 s: most of the config process's CPU).
            quiet_polls = 0
            while quiet_polls < _QUIET_POLLS or not self._watch_events or self._missing:
                await asyncio.sleep(self._poll_interval)
                quiet_polls = 0 if await self._rescan() else quiet_polls + 1

    async def _follow_events(self) -> None:
        """Rescan on each batch of file system events (and every ``rescan_interval``);
        return when changes flow (``_FLOW_CHANGES`` rescans that changed something within
        ``_FLOW_SECONDS``: polling takes over), when the directory goes missing (its watch
        goes with it), or when events fail."""
        changes: deque[float] = deque(maxlen=_FLOW_CHANGES)  # when the last rescans changed
        target, recursive = self.directory, True
        if self.directory.is_file():  # a single manifest: editors replace it, watch its folder
            target, recursive = self.directory.parent, False
        try:
            async for events in awatch(
                target,
                watch_filter=None,  # a ConfigMap volume swaps its hidden ..data link
                recursive=recursive,
                # A batch of events ends after 20 ms of quiet (a write and its rename are
                # one batch) and grows to 40 ms at most: batching changes is the
                # debouncer's job. Events held for a poll interval (100 ms) made every
                # change wait twice, here and in the debouncer (ambient-churn, change to
                # first ACK, median of four runs: 370 -> 325 ms). The step is also how
                # often the watcher wakes while idle (taking the interpreter lock): 10 ms
                # read changes sooner (54 against 72 ms p50 under churn) for twice the
                # idle wake-ups.
                step=20,
                debounce=40,
                rust_timeout=int(self._rescan_interval * 1000),
                yield_on_timeout=True,
            ):
                # The paths let the rescan read only them (empty: the timeout's full scan).
                if await self._rescan({path for _, path in events}) and self._loop_serves:
                    changes.append(time.monotonic())
                    if len(changes) == _FLOW_CHANGES and changes[-1] - changes[0] < _FLOW_SECONDS:
                        return
                if self._missing:
                    return
        except (OSError, RuntimeError) as error:
            if isinstance(error, FileNotFoundError) or not self.directory.exists():
                self._missing_now(error)  # polled until it is back
                return
            # No inotify, or the watch limit reached: polling still works.
            log.warning(
                "file events unavailable; polling the config directory instead",
                extra={
                    "directory": str(self.directory),
                    "reason": f"{type(error).__name__}: {error}",
                    "poll_interval": self._poll_interval,
                },
            )
            self._watch_events = False

    async def _rescan(self, paths: Collection[str] = ()) -> bool:
        """A reload (of ``paths`` only, if any: see ``reload``); whether it changed what
        is served."""
        try:
            changed = await self.reload(paths or None)
        except FileNotFoundError as error:
            self._missing_now(error)
            return False
        if self._missing:
            log.info("config directory available again", extra={"directory": str(self.directory)})
            self._missing = False
        return changed

    async def _read(self, read: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        # File I/O and YAML parsing happen off the event loop (unless it serves no one);
        # the result is applied on it, so the store is only ever touched by the loop.
        if self._loop_serves:
            return await asyncio.to_thread(read, *args, **kwargs)
        return read(*args, **kwargs)

    def _missing_now(self, error: Exception) -> None:
        if not self._missing:  # the transition, not every poll
            log.warning(
                "config directory unavailable; keeping the last state",
                extra={"reason": str(error)},
            )
        self._missing = True

    async def reload(self, paths: Collection[str] | None = None) -> bool:
        """One poll: re-read what changed and apply the difference to the store; whether
        any file's contents changed.

        ``paths``: what file events named; only those files are read, unless one may be
        more than a file (a directory, a hidden link) or the last whole scan is
        ``rescan_interval`` old (events can be missed: the tree is scanned then)."""
        previous = self._files
        now = time.monotonic()
        files = None
        if paths is not None and now - self._scanned_at < self._rescan_interval:
            files = await self._read(_read_paths, self.directory, previous, paths)
        if files is None:
            files = await self._read(_read_tree, self.directory, previous)
            self._scanned_at = now
        self._files = files
        # Sorted once found: ~500 paths sorted on every reload was a tenth of the config
        # process under churn (``Path`` compares in Python).
        changed = sorted(
            path
            for path in files.keys() | previous.keys()
            if path not in files
            or path not in previous
            or files[path].contents is not previous[path].contents
        )
        # The first load after a preload reports what the preload read, changed or not.
        first, self._unreported = self._unreported, False
        if not changed and not first:
            # Nothing was re-parsed (a recently written file is re-hashed on
            # every poll, but same bytes keep the same contents object).
            return False
        upserts, deletes = self._objects.update(files, previous, changed)
        self._report(_all_errors(files, self._objects.duplicates(files)))
        for obj in list(self._objects.served.values()) if first else upserts:
            path = self._objects.owner(obj.key)
            fields = files[path].contents.ignored.get(obj.key)
            if fields:
                self._ignored.note(obj.key, fields)
        for key in deletes:
            self._ignored.forget(key)
        if not upserts and not deletes:
            return True
        changes = self._store.apply(upserts, deletes)
        if changes:
            log.info(
                "config changed",
                extra={
                    "added": len(changes.added),
                    "updated": len(changes.updated),
                    "deleted": len(changes.deleted),
                },
            )
            self._on_change(changes)
        return True

    def _report(self, errors: list[DocumentError]) -> None:
        """Keep ``errors`` and log each one the first time it appears."""
        known = set(self._errors)
        for error in errors:
            if error not in known:
                log.warning(
                    "invalid manifest skipped: %s",
                    error,
                    extra={
                        "file": str(error.file),
                        "document": error.document_index,
                        "object_kind": error.kind,
                        "object_namespace": error.namespace,
                        "object_name": error.name,
                        "field": error.field,
                        "reason": error.message,
                    },
                )
        self._errors = errors
        CONFIG_ERRORS.labels("files").set(len(errors))
