"""ForkedBuild: a translator's full build in a forked child, its updates handed back."""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from xds.model.mesh import ChangeSet, Mesh, MeshStore
from xds.plane.forked_build import ForkedBuild, ForkedBuildFailed
from xds.resources import Resource, Update

TYPE = "type.googleapis.com/test.Thing"


@dataclass
class Child:
    """Publishes the pid it ran in, or behaves badly when told to."""

    exit_code: int | None = None
    hang: bool = False

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        if self.exit_code is not None:
            os._exit(self.exit_code)
        if self.hang:
            time.sleep(60)
        body = str(os.getpid()).encode() * 100_000  # more than a pipe holds
        return [Update("scope", TYPE, [Resource(TYPE, "pid", body)], replace=True)]


def test_the_updates_come_back_from_the_child() -> None:
    [update] = ForkedBuild(Child(), MeshStore()).updates()
    [resource] = update.upserts
    pid = int(resource.body[: len(resource.body) // 100_000])
    assert pid != os.getpid()
    assert (update.scope, update.type_url, update.replace) == ("scope", TYPE, True)
    assert resource.version == Resource(TYPE, "pid", resource.body).version


def test_a_child_that_dies_is_a_failed_build() -> None:
    build = ForkedBuild(Child(exit_code=3), MeshStore())
    with pytest.raises(ForkedBuildFailed, match=r"Child in process \d+ exited with 3"):
        build.updates()


def test_a_discarded_build_stops_its_child() -> None:
    build = ForkedBuild(Child(hang=True), MeshStore())
    started = time.monotonic()
    build.discard()
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(build.pid, 0)


class Garbage:
    """Parent garbage in a reference cycle whose finalizer leaves a mark."""

    def __init__(self, mark: str) -> None:
        self.mark = mark
        self.cycle = self

    def __del__(self) -> None:
        with open(self.mark, "a") as file:
            file.write(f"{os.getpid()}\n")


@dataclass
class Allocating:
    """Allocates enough containers to start the collector, were it on."""

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        kept = [[] for _ in range(50_000)]
        return [Update("scope", TYPE, [Resource(TYPE, "n", str(len(kept)).encode())])]


def test_the_child_never_finalizes_the_parents_garbage(tmp_path: Path) -> None:
    """A grpc.aio object finalized in a forked child joins gRPC's poller thread, which the
    child does not have: no collection may run the parent's finalizers there."""
    mark = tmp_path / "finalized"
    gc.collect()  # the next collection would be the child's
    Garbage(str(mark))
    build = ForkedBuild(Allocating(), MeshStore())
    build.updates()
    gc.collect()
    assert mark.read_text().split() == [str(os.getpid())]  # finalized here only
