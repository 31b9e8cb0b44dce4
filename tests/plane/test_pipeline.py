"""The pipeline: debounced batches become one commit; a failing translator loses nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from tests import builders
from tests.builders import model
from xds.model.core import Service
from xds.model.mesh import ChangeSet, Mesh, MeshStore
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
