"""The pipeline: debounced batches become one commit; a failing translator loses nothing."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

import pytest

from tests import builders
from tests.builders import model
from xds.model.core import Service
from xds.model.mesh import ChangeSet, Mesh, MeshStore
from xds.model.meta import ObjectKey
from xds.plane.pipeline import Pipeline
from xds.resources import Resource, Update
from xds.serving.store import ConfigStore
from xds.tasks import cancel_and_wait

SCOPE, TYPE = "scope", "type.googleapis.com/test.Thing"


def service(name: str) -> Service:
    return model(builders.service("ns", name), Service)


@dataclass
class Recording:
    """A translator publishing one resource per Service, failing when told to."""

    calls: list[ChangeSet | None] = field(default_factory=list)
    fail_next: int = 0

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        self.calls.append(changes)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("translator bug")
        names = sorted(s.meta.name for s in mesh.objects(Service))
        resources = [Resource(TYPE, name, name.encode()) for name in names]
        return [Update(SCOPE, TYPE, resources, replace=True)]


def published(store: ConfigStore) -> list[str]:
    return sorted(store.view(SCOPE).resources(TYPE))


async def settle(pipeline: Pipeline, rebuilds: int) -> None:
    for _ in range(200):
        if pipeline.rebuilds >= rebuilds and not pipeline.debouncer.pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pipeline.rebuilds} rebuilds, expected {rebuilds}")


async def test_a_failed_rebuild_keeps_the_last_good_resources_and_the_next_rebuilds_all(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mesh, store, translator = MeshStore(), ConfigStore(), Recording()
    pipeline = Pipeline(mesh, store, [translator], debounce_after=0.01, debounce_max=0.1)
    pipeline.changed(mesh.apply([service("a")]))
    pipeline.rebuild(None)
    assert published(store) == ["a"]
    task = asyncio.ensure_future(pipeline.run())
    try:
        translator.fail_next = 1
        pipeline.changed(mesh.apply([service("b")]))
        await asyncio.sleep(0.2)  # the batch is handed on, and fails
        assert published(store) == ["a"]  # the last good state is still served
        assert any(r.getMessage() == "rebuild failed" for r in caplog.records)
        # The failed batch's keys are lost: the next batch is a full rebuild.
        pipeline.changed(mesh.apply([service("c")]))
        await settle(pipeline, 2)
        assert published(store) == ["a", "b", "c"]
        assert translator.calls[-1] is None
        # And after that, incremental again.
        pipeline.changed(mesh.apply([service("d")]))
        await settle(pipeline, 3)
        assert translator.calls[-1] is not None
        assert pipeline.last is not None and pipeline.last.full is False
    finally:
        await cancel_and_wait(task)


async def test_changes_within_the_quiet_window_are_one_rebuild() -> None:
    mesh, store, translator = MeshStore(), ConfigStore(), Recording()
    pipeline = Pipeline(mesh, store, [translator], debounce_after=0.05, debounce_max=1.0)
    task = asyncio.ensure_future(pipeline.run())
    try:
        for name in ("a", "b", "c"):
            pipeline.changed(mesh.apply([service(name)]))
        await settle(pipeline, 1)
        await asyncio.sleep(0.1)
        assert pipeline.rebuilds == 1
        [changes] = translator.calls
        assert changes is not None and {k.name for k in changes.keys} == {"a", "b", "c"}
        assert published(store) == ["a", "b", "c"]
    finally:
        await cancel_and_wait(task)


def test_an_empty_change_set_is_not_a_rebuild() -> None:
    mesh, store, translator = MeshStore(), ConfigStore(), Recording()
    pipeline = Pipeline(mesh, store, [translator])
    service_a = service("a")
    pipeline.changed(mesh.apply([service_a]))
    assert pipeline.debouncer.pending == 1
    pipeline.changed(mesh.apply([service_a]))  # the same object again: nothing changed
    assert pipeline.debouncer.pending == 1


@dataclass
class PerService:
    """A translator publishing each Service in a scope of its own, saying which process
    built it; failing in any process but ``only_in`` when that is set."""

    calls: list[ChangeSet | None] = field(default_factory=list)
    only_in: int | None = None

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        self.calls.append(changes)
        if self.only_in is not None and os.getpid() != self.only_in:
            raise RuntimeError("not here")
        built_by = str(os.getpid()).encode()
        return [
            Update(
                f"scope-{s.meta.name}", TYPE, [Resource(TYPE, s.meta.name, built_by)], replace=True
            )
            for s in mesh.objects(Service)
        ]


def built_by(store: ConfigStore, name: str) -> int | None:
    resource = store.view(f"scope-{name}").resources(TYPE).get(name)
    return None if resource is None else int(resource.body)


def test_a_forked_first_build_publishes_what_a_child_built_and_leaves_that_translator_cold() -> (
    None
):
    mesh, store, own, forked = MeshStore(), ConfigStore(), Recording(), PerService()
    pipeline = Pipeline(mesh, store, [own, forked])
    mesh.apply([service("a"), service("b")])
    pipeline.rebuild(None, fork=True)
    assert published(store) == ["a", "b"]  # the first translator ran here
    assert own.calls == [None]
    child = built_by(store, "a")
    assert child not in (None, os.getpid()) and built_by(store, "b") == child
    assert forked.calls == [] and pipeline.cold  # its memo is in the child, gone
    # Its next translation is a full one of its own, even for a change; the other
    # translator stays incremental.
    changes = mesh.apply([service("c")])
    pipeline.rebuild(changes)
    assert own.calls[-1] is changes
    assert forked.calls == [None] and not pipeline.cold
    assert {built_by(store, name) for name in "abc"} == {os.getpid()}


def test_warming_a_cold_translator_empties_what_only_the_forked_build_published() -> None:
    mesh, store, forked = MeshStore(), ConfigStore(), PerService()
    pipeline = Pipeline(mesh, store, [Recording(), forked])
    mesh.apply([service("a"), service("b")])
    pipeline.rebuild(None, fork=True)
    mesh.apply([], [ObjectKey("Service", "ns", "b")])  # before the translator knew "b"
    assert pipeline.warm() == 2  # "a" rebuilt here, "b" emptied
    assert built_by(store, "a") == os.getpid()
    assert built_by(store, "b") is None
    assert forked.calls == [None]
    assert pipeline.warm() == 0  # nothing cold any more
    assert pipeline.last is not None and pipeline.last.full


def test_a_failed_forked_build_is_done_here(caplog: pytest.LogCaptureFixture) -> None:
    mesh, store = MeshStore(), ConfigStore()
    forked = PerService(only_in=os.getpid())
    pipeline = Pipeline(mesh, store, [Recording(), forked])
    mesh.apply([service("a")])
    pipeline.rebuild(None, fork=True)
    assert built_by(store, "a") == os.getpid()
    assert forked.calls == [None] and not pipeline.cold
    assert any(r.getMessage() == "forked build failed; translating here" for r in caplog.records)


def test_a_forked_build_is_only_for_a_full_build() -> None:
    mesh, store, forked = MeshStore(), ConfigStore(), PerService()
    pipeline = Pipeline(mesh, store, [Recording(), forked])
    pipeline.rebuild(mesh.apply([service("a")]), fork=True)
    assert built_by(store, "a") == os.getpid() and not pipeline.cold


class Hanging:
    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        time.sleep(60)
        return []


def test_when_this_process_fails_its_part_of_a_forked_build_the_children_are_stopped() -> None:
    pipeline = Pipeline(MeshStore(), ConfigStore(), [Recording(fail_next=1), Hanging()])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="translator bug"):
        pipeline.rebuild(None, fork=True)
    assert time.monotonic() - started < 5  # not the child's 60 s
    assert not pipeline.cold


class Stamped:
    """Publishes every Service's name with the (system-wide monotonic) time it started."""

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]:
        started = str(time.monotonic()).encode()
        return [
            Update(SCOPE, TYPE, [Resource(TYPE, s.meta.name, started)], replace=False)
            for s in mesh.objects(Service)
        ]


def started_at(store: ConfigStore, name: str) -> float:
    return float(store.view(SCOPE).resources(TYPE)[name].body)


def test_a_build_forked_ahead_is_taken_over_while_the_model_is_unchanged() -> None:
    mesh, store = MeshStore(), ConfigStore()
    pipeline = Pipeline(mesh, store, [Recording(), Stamped()])
    mesh.apply([service("a")])
    pipeline.fork_ahead()
    time.sleep(0.1)
    rebuilt_at = time.monotonic()
    pipeline.rebuild(None, fork=True)
    assert started_at(store, "a") < rebuilt_at and pipeline.cold


def test_a_build_forked_ahead_of_a_change_is_started_again() -> None:
    mesh, store = MeshStore(), ConfigStore()
    pipeline = Pipeline(mesh, store, [Recording(), Stamped()])
    mesh.apply([service("a")])
    pipeline.fork_ahead()
    mesh.apply([service("b")])  # as a source's first look may find
    changed_at = time.monotonic()
    pipeline.rebuild(None, fork=True)
    assert started_at(store, "a") > changed_at and pipeline.cold
    assert started_at(store, "b") > changed_at


def test_a_first_build_that_cannot_fork_is_done_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fork() -> int:
        raise BlockingIOError("Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    mesh, store, forked = MeshStore(), ConfigStore(), PerService()
    pipeline = Pipeline(mesh, store, [Recording(), forked])
    mesh.apply([service("a")])
    pipeline.fork_ahead()
    pipeline.rebuild(None, fork=True)
    assert built_by(store, "a") == os.getpid() and not pipeline.cold
    messages = [r.getMessage() for r in caplog.records]
    assert "cannot fork the first build; translating here" in messages
