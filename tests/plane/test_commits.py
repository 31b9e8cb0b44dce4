"""The commit stream, without sockets: a replica fed the config side's frames holds the
same model and the same resources, whatever the byte boundaries; a new snapshot is
applied as a diff; a broken stream is refused."""

from __future__ import annotations

import pickle
import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest

from tests import builders
from tests.builders import parse
from xds.model.mesh import ChangeSet, MeshStore
from xds.model.meta import KubeObject, ObjectKey
from xds.plane import commits
from xds.plane.app import default_translators
from xds.plane.pipeline import Pipeline
from xds.resources import Resource
from xds.serving.store import ConfigStore

SDS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def mesh_objects(pods: int, version: int = 0) -> list[KubeObject]:
    manifests = [
        builders.namespace("apps", labels={"istio.io/dataplane-mode": "ambient"}),
        builders.service("apps", "web", "10.96.0.10", [{"port": 80}], selector={"app": "web"}),
    ]
    for i in range(pods):
        manifests.append(
            builders.pod(
                "apps",
                f"web-{i}",
                f"10.0.{version}.{i + 1}",
                labels={"app": "web", "v": str(version)},
                node="node-a",
                service_account="web",
            )
        )
    return parse(*manifests)


class ConfigSide:
    """The config process without I/O: model, pipeline and the frames it would send."""

    def __init__(self) -> None:
        self.mesh = MeshStore()
        self.store = ConfigStore()
        self.pipeline = Pipeline(self.mesh, self.store, default_translators(self.mesh.config))
        self.frames: list[bytes] = []
        self.pipeline.on_published = lambda touched, origin, record: self.frames.append(
            commits.encode(commits.commit_of(self.store, touched, origin, record))
        )

    def apply(self, upserts: Sequence[KubeObject], deletes: Sequence[KubeObject] = ()) -> None:
        changes = self.mesh.apply(upserts, [obj.key for obj in deletes])
        if changes:
            self.frames.append(commits.encode(commits.mesh_changes(self.mesh, changes)))
            self.pipeline.rebuild(changes)

    def snapshot(self) -> bytes:
        return commits.encode(
            commits.snapshot_of(self.mesh, self.store, self.pipeline.rebuilds, self.pipeline.last)
        )

    def take(self) -> bytes:
        frames, self.frames = self.frames, []
        return b"".join(frames)


def chunks(data: bytes, rng: random.Random) -> Iterator[bytes]:
    at = 0
    while at < len(data):
        size = rng.choice([1, 3, 7, 64, 4096, len(data)])
        yield data[at : at + size]
        at += size


def tables(store: ConfigStore, skip: str = SDS) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (scope, type_url): dict(store.view(scope).versions(type_url))
        for scope in store.scopes()
        for type_url in store.types(scope)
        if type_url != skip
    }


def objects(mesh: MeshStore) -> dict[ObjectKey, KubeObject | None]:
    keys = mesh.keys()
    return {key: mesh.get_by_key(key) for key in keys}


def same_model(a: MeshStore, b: MeshStore) -> bool:
    return objects(a) == objects(b)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_replica_fed_any_byte_split_holds_what_the_config_side_holds(seed: int) -> None:
    rng = random.Random(seed)
    config = ConfigSide()
    config.apply(mesh_objects(3))
    replica = commits.Replica(MeshStore(), ConfigStore())
    decoder = commits.Decoder()
    for message in decoder.feed(config.snapshot()):
        replica.apply(message)
    config.take()  # what was sent before this replica connected
    steps: list[tuple[list[KubeObject], list[KubeObject]]] = [
        (mesh_objects(5), []),  # two pods added
        (mesh_objects(5, version=1), []),  # every pod changed
        ([], mesh_objects(5, version=1)[3:]),  # two pods and the Service deleted
        (mesh_objects(2, version=2), []),  # the Service is back
    ]
    for upserts, deletes in steps:
        config.apply(upserts, deletes)
        for chunk in chunks(config.take(), rng):
            for message in decoder.feed(chunk):
                replica.apply(message)
        assert same_model(replica.mesh, config.mesh)
        assert tables(replica.store) == tables(config.store) != {}
        assert replica.rebuilds == config.pipeline.rebuilds
        assert replica.last == config.pipeline.last


def test_a_new_snapshot_reaches_streams_as_a_diff_and_keeps_what_the_replica_wrote() -> None:
    config = ConfigSide()
    config.apply(mesh_objects(4))
    replica = commits.Replica(MeshStore(), ConfigStore())
    for message in commits.Decoder().feed(config.snapshot()):
        replica.apply(message)
    # The serving process's own SDS key pair lives beside the config process's tables.
    replica.store.upsert("identity/apps/web", [Resource(SDS, "default", b"key pair")])
    replica.store.commit()
    seen: list[dict[str, frozenset[str]]] = []
    for scope in config.store.scopes():
        replica.store.watch(scope, lambda touched, origin: seen.append(dict(touched)))

    # The replica missed these (its config process restarted meanwhile): one pod gone,
    # one changed, the rest as they were.
    objects = mesh_objects(4)
    changed_pod = replace(objects[3], node_name="node-b")
    config.apply([changed_pod], [objects[5]])
    config.take()
    changes = None
    for message in commits.Decoder().feed(config.snapshot()):
        changes = replica.apply(message)

    assert isinstance(changes, ChangeSet)
    assert changes.updated == {changed_pod.key} and changes.deleted == {objects[5].key}
    assert same_model(replica.mesh, config.mesh)
    assert tables(replica.store) == tables(config.store)
    touched = {name for change in seen for names in change.values() for name in names}
    assert touched and len(touched) <= 4  # the two workloads (and what names them), not all
    assert replica.store.view("identity/apps/web").get(SDS, "default") is not None


def test_a_snapshot_in_two_halves_leaves_the_store_alone_until_its_second_half() -> None:
    """A config process restarted while the serving processes hold a store: the model
    half updates their model only (the streams keep the last config through the build),
    the store half then reaches the streams as a diff."""
    config = ConfigSide()
    config.apply(mesh_objects(4))
    replica = commits.Replica(MeshStore(), ConfigStore())
    for message in commits.Decoder().feed(config.snapshot()):
        replica.apply(message)
    before = tables(replica.store)
    seen: list[dict[str, frozenset[str]]] = []
    for scope in config.store.scopes():
        replica.store.watch(scope, lambda touched, origin: seen.append(dict(touched)))

    objects = mesh_objects(4)
    moved = replace(objects[3], node_name="node-b")
    config.apply([moved])
    model_half = commits.snapshot_of(config.mesh, config.store, built=False)
    store_half = commits.snapshot_of(config.mesh, config.store, model=False)
    assert model_half.resources is None and store_half.objects is None

    changes = replica.apply(model_half)
    assert isinstance(changes, ChangeSet) and changes.updated == {moved.key}
    assert same_model(replica.mesh, config.mesh)
    assert tables(replica.store) == before and not seen

    assert replica.apply(store_half) == ChangeSet()
    assert tables(replica.store) == tables(config.store) != before
    touched = {name for change in seen for names in change.values() for name in names}
    assert touched and len(touched) <= 4


def test_a_replica_says_whether_it_holds_the_model_it_was_forked_with() -> None:
    mesh = MeshStore()
    mesh.apply(mesh_objects(2))
    replica = commits.Replica(mesh, ConfigStore())
    assert replica.hello() == commits.Hello(mesh.generation)
    replica.apply(commits.Snapshot(None, ()))  # the model kept: still the forked one
    assert replica.hello() == commits.Hello(mesh.generation)
    replica.apply(commits.MeshChanges(tuple(mesh_objects(3))))
    assert replica.hello() == commits.Hello(None)
    with pytest.raises(commits.FrameError):
        replica.apply(commits.Hello(None))


def test_a_snapshot_removes_tables_the_config_side_no_longer_has() -> None:
    replica = commits.Replica(MeshStore(), ConfigStore())
    thing = "type.googleapis.com/test.Thing"
    first = commits.Snapshot(
        (), (commits.TypeChange("waypoint/a/b", thing, (Resource(thing, "x", b"1"),)),)
    )
    replica.apply(first)
    replica.apply(commits.Snapshot((), ()))
    assert replica.store.view("waypoint/a/b").resources(thing) == {}


def test_resources_cross_with_their_version_and_without_their_wire_forms() -> None:
    resource = Resource("type.googleapis.com/test.Thing", "a", b"body", ["alias"], ["group"])
    resource.delta_field()
    copy = pickle.loads(pickle.dumps(resource, pickle.HIGHEST_PROTOCOL))
    assert copy == resource and copy.version == resource.version
    assert (copy.aliases, copy.groups) == (("alias",), ("group",))
    assert copy.delta_field() == resource.delta_field()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack(">I", commits.MAX_FRAME + 1), "over the"),
        (struct.pack(">I", 3) + b"abc", "unreadable frame"),
        (struct.pack(">I", 5) + pickle.dumps(("x", 1))[:5], "unreadable frame"),  # cut short
    ],
)
def test_a_broken_stream_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(commits.FrameError, match=reason):
        list(commits.Decoder().feed(data))


def test_a_frame_of_another_type_is_refused() -> None:
    body = pickle.dumps({"not": "a message"})
    with pytest.raises(commits.FrameError, match="unexpected frame: dict"):
        list(commits.Decoder().feed(struct.pack(">I", len(body)) + body))


def test_the_config_sides_source_health_travels_in_snapshots_and_on_its_own() -> None:
    replica = commits.Replica(MeshStore(), ConfigStore())
    replica.apply(commits.Snapshot((), (), synced=False))
    assert replica.source_synced is False
    replica.apply(commits.SourceHealth(True))
    assert replica.source_synced is True
    for message in commits.Decoder().feed(commits.encode(commits.SourceHealth(False))):
        replica.apply(message)
    assert replica.source_synced is False
