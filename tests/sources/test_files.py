"""FileSource against real files: initial load, edits, added/removed/moved files,
broken documents, and the bundled demo mesh. File events are real (inotify), and so is
polling (with a short interval) where a test asks for it; every wait is bounded.

With events, the periodic rescan is set far beyond every wait: what a test sees, an
event brought."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import shutil
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from xds.model.core import Pod, Service
from xds.model.mesh import ChangeSet, MeshStore
from xds.model.meta import ObjectKey
from xds.model.parse import parse_object
from xds.sources import files
from xds.sources.base import Source
from xds.sources.files import DocumentError, FileSource, load_directory

POLL = 0.02
TIMEOUT = 5.0


def service_yaml(name: str, port: int = 80, namespace: str = "ns") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec: {{ports: [{{port: {port}}}]}}
        """)


def svc(name: str, namespace: str = "ns") -> ObjectKey:
    return ObjectKey("Service", namespace, name)


def write(path: Path, *documents: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(documents))


class Harness:
    """A FileSource following real file events (or polling), its ChangeSets in a queue."""

    def __init__(self, directory: Path, *, events: bool = True, in_thread: bool = True) -> None:
        self.store = MeshStore()
        self.changes: asyncio.Queue[ChangeSet] = asyncio.Queue()
        self.source = FileSource(
            directory,
            self.store,
            self.changes.put_nowait,
            poll_interval=POLL,
            watch_events=events,
            rescan_interval=600.0,
            loop_serves=in_thread,
        )

    async def next_change(self) -> ChangeSet:
        return await asyncio.wait_for(self.changes.get(), TIMEOUT)

    def assert_quiet(self) -> None:
        assert self.changes.empty(), self.changes.get_nowait()


@asynccontextmanager
async def running(
    directory: Path, *, events: bool = True, in_thread: bool = True
) -> AsyncIterator[Harness]:
    harness = Harness(directory, events=events, in_thread=in_thread)
    task = asyncio.create_task(harness.source.run())
    try:
        await asyncio.wait_for(harness.source.synced.wait(), TIMEOUT)
        yield harness
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_file_source_is_a_source(tmp_path: Path) -> None:
    source: Source = FileSource(tmp_path, MeshStore(), lambda changes: None)
    assert not source.synced.is_set()


async def test_initial_load_reads_yaml_json_and_lists_recursively(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"), service_yaml("b"), "")  # trailing empty doc
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "list.json").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": "c", "namespace": "ns"},
                    }
                ],
            }
        )
    )
    write(
        tmp_path / "nested" / "other.yml",
        service_yaml("d"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ignored}\n",
    )
    write(tmp_path / "README.md", "not a manifest")
    write(tmp_path / ".hidden.yaml", service_yaml("hidden"))
    async with running(tmp_path) as harness:
        changes = await harness.next_change()
        assert changes.added == {svc("a"), svc("b"), svc("c"), svc("d")}
        assert {s.name for s in harness.store.objects(Service)} == {"a", "b", "c", "d"}
        assert harness.source.errors == []
        assert [(d.kind, d.document_index) for d in harness.source.skipped] == [("Deployment", 1)]


async def test_empty_directory_syncs_without_a_change(tmp_path: Path) -> None:
    async with running(tmp_path) as harness:
        assert harness.source.synced.is_set()
        harness.assert_quiet()
        assert len(harness.store) == 0


async def test_missing_directory_fails_run(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "absent", MeshStore(), lambda changes: None)
    with pytest.raises(FileNotFoundError):
        await asyncio.wait_for(source.run(), TIMEOUT)
    assert not source.synced.is_set()


@pytest.mark.parametrize("events", [True, False], ids=["events", "polling"])
async def test_edit_reports_only_the_changed_object(tmp_path: Path, events: bool) -> None:
    manifest = tmp_path / "services.yaml"
    write(manifest, service_yaml("a"), service_yaml("b"))
    async with running(tmp_path, events=events) as harness:
        await harness.next_change()
        old_b = harness.store.get(Service, "ns", "b")
        write(manifest, service_yaml("a"), service_yaml("b", port=8080))
        changes = await harness.next_change()
        assert changes == ChangeSet(updated=frozenset({svc("b")}), previous=changes.previous)
        assert changes.previous[svc("b")] is old_b
        updated = harness.store.get(Service, "ns", "b")
        assert updated is not None and updated.ports[0].port == 8080


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "loop"])
async def test_rescans_read_in_a_thread_or_on_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_thread: bool
) -> None:
    readers: list[int] = []

    def recording(root: Path, previous: Any) -> Any:
        readers.append(threading.get_ident())
        return read_tree(root, previous)

    read_tree = files._read_tree
    monkeypatch.setattr(files, "_read_tree", recording)
    write(tmp_path / "a.yaml", service_yaml("a"))
    async with running(tmp_path, events=False, in_thread=in_thread) as harness:
        await harness.next_change()
        write(tmp_path / "a.yaml", service_yaml("a", port=8080))
        assert (await harness.next_change()).updated == {svc("a")}
        (tmp_path / "a.yaml").unlink()
        assert (await harness.next_change()).deleted == {svc("a")}
    on_loop = {threading.get_ident()}
    assert readers
    assert (set(readers) & on_loop == set()) if in_thread else (set(readers) == on_loop)


async def test_rewriting_identical_content_is_not_a_change(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"))
    write(tmp_path / "b.yaml", service_yaml("b"))
    async with running(tmp_path) as harness:
        await harness.next_change()
        # Same content with a new mtime, plus a reformatting that parses the same.
        write(tmp_path / "a.yaml", service_yaml("a"))
        write(tmp_path / "b.yaml", "# a comment\n" + service_yaml("b"))
        os.utime(tmp_path / "a.yaml", ns=(0, 1_000_000_000))
        # A real change afterwards: the next ChangeSet must hold only that.
        write(tmp_path / "c.yaml", service_yaml("c"))
        changes = await harness.next_change()
        assert changes.keys == {svc("c")}


async def test_same_size_edit_within_one_mtime_tick_is_seen(tmp_path: Path) -> None:
    manifest = tmp_path / "a.yaml"
    write(manifest, service_yaml("a", port=1111))
    async with running(tmp_path) as harness:
        await harness.next_change()
        stamp = manifest.stat().st_mtime_ns
        write(manifest, service_yaml("a", port=2222))  # same size
        os.utime(manifest, ns=(stamp, stamp))  # and the same mtime
        changes = await harness.next_change()
        assert changes.updated == {svc("a")}
        updated = harness.store.get(Service, "ns", "a")
        assert updated is not None and updated.ports[0].port == 2222


@pytest.mark.parametrize("events", [True, False], ids=["events", "polling"])
async def test_added_and_removed_files(tmp_path: Path, events: bool) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"))
    async with running(tmp_path, events=events) as harness:
        await harness.next_change()
        write(tmp_path / "sub" / "b.yaml", service_yaml("b"), service_yaml("c"))
        assert (await harness.next_change()).added == {svc("b"), svc("c")}
        (tmp_path / "sub" / "b.yaml").unlink()
        changes = await harness.next_change()
        assert changes.deleted == {svc("b"), svc("c")}
        assert not changes.added and not changes.updated
        assert {s.name for s in harness.store.objects(Service)} == {"a"}


async def test_object_moving_between_files_is_not_deleted(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"))
    async with running(tmp_path) as harness:
        await harness.next_change()
        (tmp_path / "a.yaml").rename(tmp_path / "renamed.yaml")
        write(tmp_path / "z.yaml", service_yaml("marker"))
        changes = await harness.next_change()
        assert changes.keys == {svc("marker")}
        assert harness.store.get(Service, "ns", "a") is not None


async def test_object_moved_by_editing_two_files_in_one_reload(tmp_path: Path) -> None:
    # Driven by explicit reloads so both edits land in the same scan.
    write(tmp_path / "a.yaml", service_yaml("a"), service_yaml("moving"))
    write(tmp_path / "b.yaml", service_yaml("b"))
    store = MeshStore()
    seen: list[ChangeSet] = []
    source = FileSource(tmp_path, store, seen.append, poll_interval=POLL)
    await source.reload()
    write(tmp_path / "a.yaml", service_yaml("a"))
    write(tmp_path / "b.yaml", service_yaml("b"), service_yaml("moving", port=81))
    await source.reload()
    assert seen[-1] == ChangeSet(updated=frozenset({svc("moving")}), previous=seen[-1].previous)
    write(tmp_path / "b.yaml", service_yaml("b"))
    write(tmp_path / "a.yaml", service_yaml("a"), service_yaml("moving", port=81))
    await source.reload()
    assert len(seen) == 2  # moved back unchanged: no change at all


async def test_malformed_document_among_good_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = tmp_path / "mixed.yaml"
    bad = service_yaml("bad").replace("port: 80", "port: http")
    write(manifest, service_yaml("a"), bad, service_yaml("c"))
    with caplog.at_level(logging.WARNING, logger="xds.file"):
        async with running(tmp_path) as harness:
            assert (await harness.next_change()).added == {svc("a"), svc("c")}
            assert harness.source.errors == [
                DocumentError(
                    file=manifest,
                    document_index=1,
                    message='expected an integer 1-65535, got "http"',
                    field="spec.ports[0].port",
                    kind="Service",
                    namespace="ns",
                    name="bad",
                )
            ]
            assert str(harness.source.errors[0]) == (
                f"{manifest}: document 1: Service ns/bad: spec.ports[0].port: "
                'expected an integer 1-65535, got "http"'
            )
            # Further polls and unrelated changes do not log it again.
            write(tmp_path / "other.yaml", service_yaml("d"))
            await harness.next_change()
    warnings = [r for r in caplog.records if r.name == "xds.file" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "spec.ports[0].port" in warnings[0].getMessage()


async def test_broken_document_keeps_the_last_good_version(tmp_path: Path) -> None:
    manifest = tmp_path / "a.yaml"
    write(manifest, service_yaml("a", port=1), service_yaml("b", port=1))
    async with running(tmp_path) as harness:
        await harness.next_change()
        good_b = harness.store.get(Service, "ns", "b")
        # b becomes invalid while a is edited: a changes, b stays as it was.
        write(manifest, service_yaml("a", port=2), service_yaml("b", port=0))
        changes = await harness.next_change()
        assert changes.keys == {svc("a")}
        assert harness.store.get(Service, "ns", "b") is good_b
        assert [e.field for e in harness.source.errors] == ["spec.ports[0].port"]
        assert REGISTRY.get_sample_value("xds_config_errors", {"source": "files"}) == 1
        # Fixing it applies the fix and clears the error.
        write(manifest, service_yaml("a", port=2), service_yaml("b", port=3))
        assert (await harness.next_change()).keys == {svc("b")}
        assert harness.source.errors == []
        assert REGISTRY.get_sample_value("xds_config_errors", {"source": "files"}) == 0
        # Deleting the document deletes the object.
        write(manifest, service_yaml("a", port=2))
        assert (await harness.next_change()).deleted == {svc("b")}


async def test_broken_document_without_a_name_is_matched_by_position(tmp_path: Path) -> None:
    manifest = tmp_path / "a.yaml"
    write(manifest, service_yaml("a"), service_yaml("b"))
    async with running(tmp_path) as harness:
        await harness.next_change()
        write(manifest, service_yaml("a"), service_yaml("b").replace("name: b, ", ""))
        write(tmp_path / "marker.yaml", service_yaml("marker"))
        assert (await harness.next_change()).keys == {svc("marker")}
        assert harness.store.get(Service, "ns", "b") is not None
        (error,) = harness.source.errors
        assert (error.document_index, error.field) == (1, "metadata.name")


async def test_invalid_yaml_keeps_the_whole_file(tmp_path: Path) -> None:
    manifest = tmp_path / "a.yaml"
    write(manifest, service_yaml("a"), service_yaml("b"))
    async with running(tmp_path) as harness:
        await harness.next_change()
        write(manifest, service_yaml("a"), "kind: [unclosed\n")
        write(tmp_path / "marker.yaml", service_yaml("marker"))
        assert (await harness.next_change()).keys == {svc("marker")}
        assert {s.name for s in harness.store.objects(Service)} == {"a", "b", "marker"}
        (error,) = harness.source.errors
        assert error.file == manifest and error.document_index == 1
        assert error.message.startswith("invalid YAML/JSON")


async def test_duplicate_objects_first_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("dup", port=1))
    write(tmp_path / "b.yaml", service_yaml("dup", port=2))
    async with running(tmp_path) as harness:
        await harness.next_change()
        served = harness.store.get(Service, "ns", "dup")
        assert served is not None and served.ports[0].port == 1
        (error,) = harness.source.errors
        assert error.file == tmp_path / "b.yaml" and "duplicate" in error.message
        # Removing the winner promotes the other copy instead of deleting.
        (tmp_path / "a.yaml").unlink()
        assert (await harness.next_change()).updated == {svc("dup")}
        assert harness.source.errors == []


def test_files_are_ordered_by_path_components_not_text(tmp_path: Path) -> None:
    # As text "a-x.yaml" sorts before "a/x.yaml" ('-' < '/'); by components "a" comes
    # first, and that is the order a duplicate's winner is chosen by.
    (tmp_path / "a").mkdir()
    write(tmp_path / "a" / "x.yaml", service_yaml("dup", port=1))
    write(tmp_path / "a-x.yaml", service_yaml("dup", port=2))
    objects, errors = files.load_directory(tmp_path)
    [served] = [obj for obj in objects if isinstance(obj, Service)]
    assert served.ports[0].port == 1
    [error] = errors
    assert error.file == tmp_path / "a-x.yaml" and "duplicate" in error.message


@pytest.mark.parametrize("events", [True, False], ids=["events", "polling"])
@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "loop"])
async def test_configmap_volume_layout(tmp_path: Path, events: bool, in_thread: bool) -> None:
    """Kubernetes mounts a ConfigMap as symlinks into a hidden, atomically swapped dir."""
    first = tmp_path / "..2026_01_01_00_00_00.1"
    write(first / "mesh.yaml", service_yaml("a", port=1))
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "mesh.yaml").symlink_to("..data/mesh.yaml")
    async with running(tmp_path, events=events, in_thread=in_thread) as harness:
        assert (await harness.next_change()).added == {svc("a")}
        assert harness.source.errors == []  # the hidden copies are not read twice
        second = tmp_path / "..2026_01_01_00_01_00.2"
        write(second / "mesh.yaml", service_yaml("a", port=2))
        (tmp_path / "..data_tmp").symlink_to(second.name)
        (tmp_path / "..data_tmp").rename(tmp_path / "..data")
        assert (await harness.next_change()).updated == {svc("a")}


def test_load_directory_and_single_file(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"), "apiVersion: v1\nkind: Service\n")
    objects, errors = load_directory(tmp_path)
    assert [o.key for o in objects] == [svc("a")]
    assert [(e.document_index, e.field) for e in errors] == [(1, "metadata.name")]
    objects, errors = load_directory(tmp_path / "a.yaml")
    assert [o.key for o in objects] == [svc("a")]
    with pytest.raises(FileNotFoundError):
        load_directory(tmp_path / "absent")


def test_list_item_errors_name_the_item(tmp_path: Path) -> None:
    write(
        tmp_path / "list.yaml",
        textwrap.dedent("""\
        apiVersion: v1
        kind: PodList
        items:
        - {apiVersion: v1, kind: Pod, metadata: {name: good, namespace: ns}}
        - {apiVersion: v1, kind: Pod, metadata: {name: bad, namespace: ns},
           status: {podIP: not-an-ip}}
        """),
    )
    objects, errors = load_directory(tmp_path)
    assert [o.key for o in objects] == [ObjectKey("Pod", "ns", "good")]
    (error,) = errors
    assert (error.kind, error.name, error.field) == ("Pod", "bad", "items[1].status.podIP")


def test_bundled_demo_mesh_loads_cleanly() -> None:
    from xds.model.core import Namespace
    from xds.model.gateway import Gateway, HTTPRoute
    from xds.model.security import AuthorizationPolicy, MtlsMode, PeerAuthentication
    from xds.sources.demo import demo_directory

    objects, errors = load_directory(demo_directory())
    assert errors == []
    store = MeshStore()
    store.apply(objects)

    bookinfo = store.namespace("bookinfo")
    assert bookinfo is not None
    assert bookinfo.labels["istio.io/dataplane-mode"] == "ambient"
    assert bookinfo.labels["istio.io/use-waypoint"] == "waypoint"
    frontend = store.namespace("bookinfo-frontend")
    assert frontend is not None and "istio.io/use-waypoint" not in frontend.labels
    assert store.get(Namespace, "", "istio-system") is not None

    assert {s.name for s in store.services_in("bookinfo")} >= {
        "productpage",
        "details",
        "reviews",
        "ratings",
        "reviews-v1",
        "reviews-v2",
        "waypoint",
    }
    reviews = store.get(Service, "bookinfo", "reviews")
    assert reviews is not None and reviews.ports[0].target_port == "http"
    versions = {p.labels["version"] for p in store.pods_with_labels("bookinfo", reviews.selector)}
    assert versions == {"v1", "v2", "v3"}
    for pod in store.pods_with_labels("bookinfo", reviews.selector):
        assert pod.ready and pod.pod_ips and pod.container_port_named("http") is not None
        assert pod.service_account == "bookinfo-reviews"
    assert {p.node_name for p in store.objects(Pod)} == {"node-a", "node-b"}
    assert len({ip for p in store.objects(Pod) for ip in p.pod_ips}) == len(store.objects(Pod))

    waypoint = store.get(Gateway, "bookinfo", "waypoint")
    assert waypoint is not None
    assert waypoint.gateway_class_name == "istio-waypoint"
    assert [(lis.port, lis.protocol) for lis in waypoint.listeners] == [(15008, "HBONE")]
    assert waypoint.status_addresses and waypoint.labels["istio.io/waypoint-for"] == "service"
    waypoint_pods = store.pods_with_labels(
        "bookinfo", {"gateway.networking.k8s.io/gateway-name": "waypoint"}
    )
    assert len(waypoint_pods) == 1

    route = store.get(HTTPRoute, "bookinfo", "reviews")
    assert route is not None and route.parent_refs[0].is_service
    assert [(b.name, b.weight) for b in route.rules[0].backend_refs] == [
        ("reviews-v1", 90),
        ("reviews-v2", 10),
    ]

    l4 = store.get(AuthorizationPolicy, "bookinfo", "ratings-from-reviews")
    l7 = store.get(AuthorizationPolicy, "bookinfo", "productpage-viewer")
    assert l4 is not None and l4.selector == {"app": "ratings"}
    assert l4.rules[0].sources[0].principals == ("cluster.local/ns/bookinfo/sa/bookinfo-reviews",)
    assert l7 is not None and l7.target_refs[0].kind == "Gateway"
    assert l7.rules[0].operations[0].paths == ("/productpage*",)
    strict = store.get(PeerAuthentication, "bookinfo", "default")
    assert strict is not None and strict.mode is MtlsMode.STRICT


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.json", b'{"apiVersion": "v1",'),
        ("bad.yaml", b"apiVersion: v1\nkind: Service\nmetadata: {name: [\n"),
        ("latin1.yaml", "metadata: {name: caf\u00e9}".encode("latin-1")),
    ],
)
def test_unparseable_files_are_reported(tmp_path: Path, name: str, content: bytes) -> None:
    write(tmp_path / "good.yaml", service_yaml("good"))
    (tmp_path / name).write_bytes(content)
    objects, errors = load_directory(tmp_path)
    assert [o.key for o in objects] == [svc("good")]
    (error,) = errors
    assert error.file == tmp_path / name and error.document_index == 0
    assert error.message.startswith("invalid YAML/JSON")


@pytest.mark.parametrize("events", [True, False], ids=["events", "polling"])
@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "loop"])
async def test_vanished_directory_is_logged_once_and_its_return_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, events: bool, in_thread: bool
) -> None:
    caplog.set_level(logging.INFO, "xds.file")
    directory = tmp_path / "mesh"
    write(directory / "a.yaml", service_yaml("a"))
    async with running(directory, events=events, in_thread=in_thread) as harness:
        await harness.next_change()
        directory.rename(tmp_path / "away")
        await asyncio.sleep(POLL * 10)
        (tmp_path / "away").rename(directory)
        await asyncio.sleep(POLL * 5)
        harness.assert_quiet()  # the objects stayed
        # Followed again once back (by events again, where they are used).
        write(directory / "b.yaml", service_yaml("b"))
        assert (await harness.next_change()).added == {svc("b")}
    messages = [r.getMessage() for r in caplog.records if r.name == "xds.file"]
    assert messages.count("config directory unavailable; keeping the last state") == 1
    assert messages.count("config directory available again") == 1


async def test_special_files_are_never_opened(tmp_path: Path) -> None:
    """A FIFO named *.yaml would block the reader forever, /dev/zero would never end."""
    write(tmp_path / "a.yaml", service_yaml("a"))
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    async with running(tmp_path) as harness:
        changes = await harness.next_change()
        assert changes.added == {svc("a")}
        reasons = {error.file.name: error.message for error in harness.source.errors}
        assert set(reasons) == {"pipe.yaml", "zero.yaml"}
        assert all("not a regular file" in reason for reason in reasons.values())


async def test_a_special_file_named_by_an_event_is_never_opened(tmp_path: Path) -> None:
    """Read by name on the loop (the config process), a FIFO would block it for good."""
    write(tmp_path / "a.yaml", service_yaml("a"))
    async with running(tmp_path, in_thread=False) as harness:
        await harness.next_change()
        os.mkfifo(tmp_path / "pipe.yaml")
        write(tmp_path / "b.yaml", service_yaml("b"))
        assert (await harness.next_change()).added == {svc("b")}
        reasons = {error.file.name: error.message for error in harness.source.errors}
        assert "not a regular file" in reasons["pipe.yaml"]


async def test_oversized_file_is_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xds.sources import files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1024)
    write(tmp_path / "a.yaml", service_yaml("a"))
    write(tmp_path / "big.yaml", service_yaml("b") + "\n#" + "x" * 2048)
    async with running(tmp_path) as harness:
        assert (await harness.next_change()).added == {svc("a")}
        [error] = harness.source.errors
        assert error.file.name == "big.yaml" and "more than the" in error.message


def _destination_rule(policy: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: reviews, namespace: ns}}
        spec:
          host: reviews
          trafficPolicy: {policy}
        """)


async def test_ignored_fields_are_told_once_per_object_and_again_when_they_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = tmp_path / "dr.yaml"
    write(manifest, _destination_rule("{proxyProtocol: {version: V1}}"))

    def told() -> list[str]:
        return [
            getattr(r, "fields", "")
            for r in caplog.records
            if r.name == "xds.file" and "are ignored" in r.getMessage()
        ]

    with caplog.at_level(logging.WARNING, logger="xds.file"):
        async with running(tmp_path) as harness:
            await harness.next_change()
            assert told() == ["spec.trafficPolicy.proxyProtocol"]
            record = next(r for r in caplog.records if "are ignored" in r.getMessage())
            assert (record.object_kind, record.object_namespace, record.object_name) == (
                "DestinationRule",
                "ns",
                "reviews",
            )
            # Other edits, and edits of the object that keep the same ignored fields:
            # nothing new to tell.
            write(tmp_path / "other.yaml", service_yaml("d"))
            await harness.next_change()
            write(
                manifest,
                _destination_rule("{proxyProtocol: {version: V1}, loadBalancer: {simple: RANDOM}}"),
            )
            await harness.next_change()
            assert len(told()) == 1
            write(manifest, _destination_rule("{tunnel: {protocol: CONNECT}}"))
            await harness.next_change()
            assert told()[1:] == ["spec.trafficPolicy.tunnel"]


async def test_without_file_events_the_directory_is_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No inotify (or its watch limit reached): said once, then polling does the work."""

    def no_events(*args: object, **kwargs: object) -> AsyncIterator[set[object]]:
        raise OSError("OS file watch limit reached")

    monkeypatch.setattr(files, "awatch", no_events)
    caplog.set_level(logging.WARNING, "xds.file")
    async with running(tmp_path) as harness:
        write(tmp_path / "a.yaml", service_yaml("a"))
        assert (await harness.next_change()).added == {svc("a")}
        write(tmp_path / "b.yaml", service_yaml("b"))
        assert (await harness.next_change()).added == {svc("b")}
    warnings = [r for r in caplog.records if r.name == "xds.file"]
    assert [r.getMessage() for r in warnings] == [
        "file events unavailable; polling the config directory instead"
    ]
    assert "watch limit" in str(warnings[0].__dict__["reason"])


@pytest.mark.parametrize("fork", [False, True], ids=["spawned", "forked"])
def test_a_large_load_is_parsed_in_worker_processes_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    """Worker processes (spawned, or forked by a caller that may) give exactly what
    parsing here gives: objects, errors naming their file and document, skipped kinds,
    in file order."""
    for index in range(12):
        write(
            tmp_path / f"{index:02}.yaml",
            service_yaml(f"s{index}"),
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: x}]}\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        )
    files_in_order = [(path, path.read_bytes()) for path in sorted(tmp_path.glob("*.yaml"))]
    here = [files.read_manifests(path, data) for path, data in files_in_order]
    monkeypatch.setattr(files, "PARALLEL_MIN_BYTES", 0)

    real, here_pid = files.read_manifests, os.getpid()

    def not_here(
        path: Path, data: bytes, previous: files.ManifestFile | None = None
    ) -> files.ManifestFile:
        if os.getpid() == here_pid:
            raise AssertionError("parsed in this process, not in a worker")
        return real(path, data, previous)

    # A spawned worker is a fresh interpreter (the patch does not reach it); a forked
    # one has it, but another pid.
    monkeypatch.setattr(files, "read_manifests", not_here)
    assert files.ParseInProgress(files_in_order, fork=fork).results() == here
    monkeypatch.undo()
    assert [len(f.errors) for f in here] == [1] * 12 and all(f.skipped for f in here)
    objects, errors = load_directory(tmp_path)
    assert len(objects) == 12 and len(errors) == 12


async def test_steady_writes_rescan_no_oftener_than_polling_would(tmp_path: Path) -> None:
    """Each event batch would otherwise walk the tree and merge every object: under a
    stream of writes, rescans are spaced by the poll interval once the flow is seen (a
    few changes by events), and the last write is still seen."""
    store = MeshStore()
    interval = 0.25
    source = FileSource(
        tmp_path, store, lambda changes: None, poll_interval=interval, rescan_interval=600.0
    )
    rescans = 0
    reload = source.reload

    async def counted(paths: Collection[str] | None = None) -> bool:
        nonlocal rescans
        rescans += 1
        return await reload(paths)

    source.reload = counted  # type: ignore[method-assign]
    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), TIMEOUT)
        started = rescans
        seconds = 1.5
        for index in range(int(seconds / 0.02)):  # a write every 20 ms
            write(tmp_path / "a.yaml", service_yaml("a", port=1000 + index))
            await asyncio.sleep(0.02)
        last = 1000 + int(seconds / 0.02) - 1

        def port() -> int | None:
            service = store.get(Service, "ns", "a")
            return service.ports[0].port if service is not None else None

        await asyncio.wait_for(_until(lambda: port() == last), TIMEOUT)
        flow_seen = files._FLOW_CHANGES
        assert rescans - started <= flow_seen + seconds / interval + 2, rescans - started
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(0.01)


# -- the incremental merge equals the full one ------------------------------------------

_PATHS = [Path(f"/m/{name}.yaml") for name in "abcd"]
_NAMES = ["s1", "s2", "s3", "s4", "s5"]


def _contents(names: list[str], version: int) -> files.ManifestFile:
    objects: dict[ObjectKey, Service] = {}
    for name in names:
        service = parse_object(yaml.safe_load(service_yaml(name, port=1000 + version)))
        assert isinstance(service, Service)
        objects[service.key] = service
    return files.ManifestFile(objects, {key: i for i, key in enumerate(objects)})


def full_merge(
    current: dict[Path, files._FileState],
) -> tuple[dict[ObjectKey, Service], list[DocumentError]]:
    """The reference: every file in order, the first definition of a key wins."""
    merged: dict[ObjectKey, Service] = {}
    owner: dict[ObjectKey, Path] = {}
    duplicates: list[DocumentError] = []
    for path in sorted(current):
        contents = current[path].contents
        for key, obj in contents.objects.items():
            if key in merged:
                duplicates.append(
                    DocumentError(
                        path,
                        contents.document_of.get(key),
                        f"duplicate of the object in {owner[key]}; ignored",
                        kind=key.kind,
                        namespace=key.namespace or None,
                        name=key.name,
                    )
                )
                continue
            assert isinstance(obj, Service)
            merged[key] = obj
            owner[key] = path
    return merged, duplicates


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(_PATHS),
            st.one_of(st.none(), st.lists(st.sampled_from(_NAMES), unique=True)),
            max_size=4,
        ),
        max_size=12,
    )
)
@settings(max_examples=150, deadline=None)
def test_merged_objects_follow_the_files_as_a_full_merge_would(
    steps: list[dict[Path, list[str] | None]],
) -> None:
    """Each step rewrites some files (None: removes them); some rewrites keep the same
    names with new objects. After every step the served objects, their identity, and the
    duplicates reported are exactly those of a full merge."""
    merged = files.MergedObjects()
    current: dict[Path, files._FileState] = {}
    for version, step in enumerate(steps):
        previous = dict(current)
        for path, names in step.items():
            if names is None:
                current.pop(path, None)
            else:
                current[path] = files._FileState(0, 0, b"", _contents(names, version))
        upserts, deletes = merged.update(current, previous, sorted(step))
        wanted, duplicates = full_merge(current)
        assert merged.served.keys() == wanted.keys()
        assert all(merged.served[key] is obj for key, obj in wanted.items())
        assert merged.duplicates(current) == duplicates
        before = {key for path in previous for key in previous[path].contents.objects}
        assert set(deletes) == before - wanted.keys()
        assert {obj.key for obj in upserts} <= wanted.keys()


async def test_events_wake_it_polling_follows_a_flow_of_changes_then_events_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes arrive by event; polling takes over only while changes flow (events'
    wake-ups would compete with serving), and hands back to events after quiet polls. An
    occasional change is no flow: polling would rescan the whole tree for nothing."""
    watches = 0
    real_awatch = files.awatch

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal watches
        watches += 1
        return real_awatch(*args, **kwargs)

    monkeypatch.setattr(files, "awatch", counted)
    async with running(tmp_path) as harness:
        assert watches == 1
        for name in "ab":
            write(tmp_path / f"{name}.yaml", service_yaml(name))
            assert (await harness.next_change()).added == {svc(name)}
        # Two changes are no flow: still the first watch, more than ten polls later.
        await asyncio.sleep(files._QUIET_POLLS * POLL * 3)
        assert watches == 1
        # A third change within the second is: polled, then events again.
        write(tmp_path / "c.yaml", service_yaml("c"))
        assert (await harness.next_change()).added == {svc("c")}
        write(tmp_path / "d.yaml", service_yaml("d"))
        assert (await harness.next_change()).added == {svc("d")}
        write(tmp_path / "e.yaml", service_yaml("e"))
        assert (await harness.next_change()).added == {svc("e")}
        await asyncio.wait_for(_until(lambda: watches == 2), TIMEOUT)
        write(tmp_path / "f.yaml", service_yaml("f"))
        assert (await harness.next_change()).added == {svc("f")}


_FRAGMENTS = [
    service_yaml("a"),
    service_yaml("b", port=81),
    service_yaml("a", port=82),  # a duplicate of "a" within the file
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: ns}\n",  # not modelled
    "apiVersion: v1\nkind: Service\nmetadata: {namespace: ns}\n",  # no name: invalid
    "apiVersion: v1\nkind: List\nitems:\n- "
    + service_yaml("c").replace("\n", "\n  ").rstrip()
    + "\n",
    "",  # an empty document
    "# only a comment\n",
    "kind: [unclosed\n",  # not YAML
    "apiVersion: v1\nkind: Service\nmetadata: {name: d, namespace: ns}\n"
    "spec:\n  ports: [{port: 80}]\n  externalName: |\n    ---\n    text\n",  # "---" indented
    "--- !!str just a string\n",
    "...\n",  # a document end marker
    "%YAML 1.1\n",  # a directive
]


@given(
    st.lists(st.sampled_from(range(len(_FRAGMENTS))), max_size=8),
    st.lists(st.sampled_from(range(len(_FRAGMENTS))), max_size=8),
    st.sampled_from(["---\n", "--- \n", "\n---\n"]),
)
@settings(max_examples=150, deadline=None)
def test_reading_a_file_document_by_document_reads_it_as_a_whole(
    before: list[int], after: list[int], separator: str
) -> None:
    """A file is split at its document starts and only documents whose text changed are
    parsed again; whatever the file holds, the result (objects, errors and their document
    indexes, skipped documents) is what parsing the whole file gives."""
    path = Path("mesh.yaml")
    old = separator.join(_FRAGMENTS[i] for i in before).encode()
    new = separator.join(_FRAGMENTS[i] for i in after).encode()
    whole = files._read_whole(path, new)
    assert files.read_manifests(path, new) == whole
    assert files.read_manifests(path, new, files.read_manifests(path, old)) == whole


def test_an_edit_parses_only_the_documents_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path("mesh.yaml")
    before = files.read_manifests(path, "---\n".join(map(service_yaml, "abcd")).encode())
    parsed: list[object] = []
    real = files._read_document
    monkeypatch.setattr(files, "_read_document", lambda doc: parsed.append(doc) or real(doc))
    edited = "---\n".join([*map(service_yaml, "abc"), service_yaml("d", port=90)]).encode()
    after = files.read_manifests(path, edited, before)
    assert len(parsed) == 1 and after.objects[svc("d")].ports[0].port == 90  # type: ignore[attr-defined]
    assert after == files._read_whole(path, edited)


async def test_a_preloaded_directory_is_served_without_parsing_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a split server's parent read before forking: the config process's source
    starts from it, re-reads only what changed since (maybe long ago, for a restarted
    config process), removes what has gone since, and still reports every error."""
    write(tmp_path / "a.yaml", service_yaml("a"), service_yaml("b"))
    write(tmp_path / "b.yaml", service_yaml("c"), "kind: Service\nmetadata: {namespace: ns}\n")
    write(tmp_path / "c.yaml", service_yaml("d"))
    write(tmp_path / "gone.yaml", service_yaml("e"))
    store = MeshStore()
    parsed_files = files.PreloadInProgress(tmp_path).finish(store)
    generation = store.generation
    assert {s.name for s in store.objects(Service)} == {"a", "b", "c", "d", "e"}
    # Since the preload: an object taken out of a file, a file edited, a file gone.
    write(tmp_path / "a.yaml", service_yaml("a"))
    write(tmp_path / "c.yaml", service_yaml("d", port=90))
    for index, name in enumerate(("a.yaml", "c.yaml"), start=1):
        os.utime(tmp_path / name, ns=(index, index))  # whatever the clock: not as preloaded
    (tmp_path / "gone.yaml").unlink()
    read: list[str] = []
    real = files.read_manifests
    monkeypatch.setattr(
        files,
        "read_manifests",
        lambda path, data, previous=None: read.append(path.name) or real(path, data, previous),
    )
    changes: list[ChangeSet] = []
    source = FileSource(
        tmp_path, store, changes.append, poll_interval=POLL, watch_events=False, parsed=parsed_files
    )
    assert await source.reload()
    assert read == ["a.yaml", "c.yaml"]
    [change] = changes
    assert change.updated == {svc("d")} and change.deleted == {svc("b"), svc("e")}
    assert not change.added and store.generation == generation + 1
    [error] = source.errors
    assert (error.file, error.document_index) == (tmp_path / "b.yaml", 1)
    # From then on, the source is an ordinary one.
    write(tmp_path / "c.yaml", service_yaml("d", port=91))
    os.utime(tmp_path / "c.yaml", ns=(3, 3))
    assert await source.reload()
    assert changes[-1].updated == {svc("d")} and len(changes) == 2


async def test_a_preloaded_directory_emptied_since_serves_nothing(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("a"))
    store = MeshStore()
    parsed_files = files.PreloadInProgress(tmp_path).finish(store)
    (tmp_path / "a.yaml").unlink()
    changes: list[ChangeSet] = []
    source = FileSource(tmp_path, store, changes.append, watch_events=False, parsed=parsed_files)
    await source.reload()
    assert [change.deleted for change in changes] == [{svc("a")}] and len(store) == 0


def test_a_preload_parses_in_workers_while_its_caller_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started, it has read the files and forked its workers; the collector stays off in
    the caller (which unpickles results as they come) until it is finished, once."""
    for index in range(8):
        write(tmp_path / f"{index}.yaml", service_yaml(f"s{index}"))
    monkeypatch.setattr(files, "PARALLEL_MIN_BYTES", 0)
    reading = files.PreloadInProgress(tmp_path)
    for index in range(8):  # read already: what happens to the files now is not seen
        (tmp_path / f"{index}.yaml").unlink()
    assert not gc.isenabled()
    store = MeshStore()
    parsed = reading.finish(store)
    assert gc.isenabled()
    assert {s.name for s in store.objects(Service)} == {f"s{index}" for index in range(8)}
    assert len(parsed.files) == 8
    with pytest.raises(RuntimeError, match="finished or cancelled already"):
        reading.finish(MeshStore())
    reading.cancel()  # nothing left to stop


def test_a_cancelled_preload_stops_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(8):
        write(tmp_path / f"{index}.yaml", service_yaml(f"s{index}"))
    monkeypatch.setattr(files, "PARALLEL_MIN_BYTES", 0)
    before = set(multiprocessing.active_children())
    reading = files.PreloadInProgress(tmp_path)
    assert set(multiprocessing.active_children()) - before  # forked workers
    reading.cancel()
    assert gc.isenabled()
    assert set(multiprocessing.active_children()) <= before
    with pytest.raises(RuntimeError):
        reading.finish(MeshStore())


def test_a_preload_of_a_missing_directory_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        files.PreloadInProgress(tmp_path / "missing")
    assert gc.isenabled()


def _state(root: Path) -> dict[Path, Any]:
    return files._read_tree(root, {})


def _served(state: Mapping[Path, Any]) -> dict[str, list[str]]:
    return {
        str(path): sorted(f"{k.name}:{o.ports[0].port}" for k, o in s.contents.objects.items())
        for path, s in state.items()
    }


@pytest.mark.parametrize(
    ("case", "then", "named", "expected"),
    [
        # A file events name is read, even with the same size and mtime.
        (
            "edit",
            lambda r: write_same_stamp(r / "a.yaml", service_yaml("a", port=2)),
            ["a.yaml"],
            {"a.yaml": ["a:2"], "b.yaml": ["b:80"]},
        ),
        # A file no event names is not read (the next whole scan finds it).
        (
            "unnamed",
            lambda r: write(r / "b.yaml", service_yaml("b", port=3)),
            ["a.yaml"],
            {"a.yaml": ["a:80"], "b.yaml": ["b:80"]},
        ),
        (
            "added",
            lambda r: write(r / "sub" / "c.yaml", service_yaml("c")),
            ["sub/c.yaml"],
            {"a.yaml": ["a:80"], "b.yaml": ["b:80"], "sub/c.yaml": ["c:80"]},
        ),
        ("removed", lambda r: (r / "b.yaml").unlink(), ["b.yaml"], {"a.yaml": ["a:80"]}),
        # The harness's atomic write: a hidden temporary file renamed over the file.
        (
            "renamed over",
            lambda r: atomic_write(r / "b.yaml", service_yaml("b", port=4)),
            [".b.yaml.tmp", "b.yaml"],
            {"a.yaml": ["a:80"], "b.yaml": ["b:4"]},
        ),
        (
            "not a manifest",
            lambda r: write(r / "README.md", "hi"),
            ["README.md"],
            {"a.yaml": ["a:80"], "b.yaml": ["b:80"]},
        ),
        # Anything that may be more than a file: the tree is scanned (None).
        ("new directory", lambda r: write(r / "d" / "e.yaml", service_yaml("e")), ["d"], None),
        ("directory gone", lambda r: shutil.rmtree(r / "sub"), ["sub"], None),
        ("hidden link", lambda r: (r / "..data").symlink_to("sub"), ["..data"], None),
        ("outside", lambda r: None, ["../elsewhere.yaml"], None),
        ("the root", lambda r: None, ["."], None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_events_read_only_the_files_they_name(
    tmp_path: Path,
    case: str,
    then: Callable[[Path], object],
    named: list[str],
    expected: dict[str, list[str]] | None,
) -> None:
    root = tmp_path / "mesh"
    write(root / "a.yaml", service_yaml("a"))
    write(root / "b.yaml", service_yaml("b"))
    if case == "directory gone":
        write(root / "sub" / "c.yaml", service_yaml("c"))
    before = _state(root)
    then(root)
    result = files._read_paths(root, before, [str(root / name) for name in named])
    if expected is None:
        assert result is None
        return
    assert result is not None
    assert _served(result) == {str(root / name): objs for name, objs in expected.items()}
    assert list(result) == sorted(result)  # in the order a scan lists them
    if case != "unnamed":
        assert _served(result) == _served(_state(root))  # what a whole scan would read


def write_same_stamp(path: Path, text: str) -> None:
    stamp = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))


def atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.rename(path)


async def test_the_config_process_follows_events_and_scans_the_tree_now_and_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading on the loop (the config process), steady writes stay on events (no
    polling takes over); what events cannot see (a file written through a hard link
    outside the tree: the event goes to that directory) is still found by the whole
    scan every ``rescan_interval``."""
    root, outside = tmp_path / "mesh", tmp_path / "outside"
    write(root / "a.yaml", service_yaml("a"))
    write(outside / "x.yaml", service_yaml("x", port=1))
    os.link(outside / "x.yaml", root / "x.yaml")
    store = MeshStore()
    source = FileSource(
        root,
        store,
        lambda changes: None,
        poll_interval=0.05,
        rescan_interval=0.5,
        loop_serves=False,
    )
    whole, targeted = 0, 0
    read_tree, read_paths = files._read_tree, files._read_paths

    def counted_tree(*args: Any) -> Any:
        nonlocal whole
        whole += 1
        return read_tree(*args)

    def counted_paths(*args: Any) -> Any:
        nonlocal targeted
        targeted += 1
        return read_paths(*args)

    def port(name: str) -> int | None:
        service = store.get(Service, "ns", name)
        return service.ports[0].port if service is not None else None

    task = asyncio.create_task(source.run())
    try:
        await asyncio.wait_for(source.synced.wait(), TIMEOUT)
        monkeypatch.setattr(files, "_read_tree", counted_tree)
        monkeypatch.setattr(files, "_read_paths", counted_paths)
        write(outside / "x.yaml", service_yaml("x", port=2))  # in place: no event here
        started = time.monotonic()
        index = 0
        while port("x") != 2 and time.monotonic() - started < TIMEOUT:
            index += 1
            atomic_write(root / "a.yaml", service_yaml("a", port=1000 + index))
            await asyncio.sleep(0.03)
        assert port("x") == 2
        await asyncio.wait_for(_until(lambda: port("a") == 1000 + index), TIMEOUT)
        assert targeted >= 3  # the steady writes were read by name
        assert 1 <= whole <= targeted  # and the tree scanned now and then
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_events_under_a_relative_directory_read_only_the_named_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("mesh")
    write(root / "a.yaml", service_yaml("a"))
    write(root / "b.yaml", service_yaml("b"))
    async with running(root, events=True) as harness:
        await harness.next_change()
        whole: list[Path] = []
        read_tree = files._read_tree

        def counted(directory: Path, previous: Any) -> Any:
            whole.append(directory)
            return read_tree(directory, previous)

        monkeypatch.setattr(files, "_read_tree", counted)
        atomic_write(root / "a.yaml", service_yaml("a", port=2))
        assert (await harness.next_change()).updated == {svc("a")}
        (root / "b.yaml").unlink()
        assert (await harness.next_change()).deleted == {svc("b")}
        assert whole == []  # the events named the files: no scan of the tree
        write(root / "sub" / "c.yaml", service_yaml("c"))  # a new directory: the tree
        assert (await harness.next_change()).added == {svc("c")}
        assert whole


def test_a_directory_moved_away_is_seen_under_the_working_directory_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config .``: paths the scan spells "./sub/a.yaml" are "sub/a.yaml" as ``Path``s;
    an event for the directory still finds the files it held."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "sub" / "a.yaml", service_yaml("a"))
    before = _state(Path("."))
    (tmp_path / "sub").rename(tmp_path.parent / f"{tmp_path.name}-moved")
    assert files._read_paths(Path("."), before, [str(tmp_path / "sub")]) is None
