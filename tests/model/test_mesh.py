"""MeshStore change detection and indexes; ChangeSet merging."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from tests import builders
from tests.builders import model
from xds.model.core import Namespace, Pod, Service
from xds.model.frozen import FrozenMap
from xds.model.mesh import ChangeSet, MeshConfig, MeshStore
from xds.model.meta import KubeObject, ObjectKey


def pod(name: str, namespace: str = "ns", ip: str | None = None, **labels: str) -> Pod:
    # Only what the store indexes (labels, IPs): no phase, no readiness.
    return model(builders.pod(namespace, name, ip, labels=labels, phase=None, ready=None), Pod)


def service(name: str, namespace: str = "ns", **selector: str) -> Service:
    return model(builders.service(namespace, name, selector=selector), Service)


def test_defaults() -> None:
    config = MeshStore().config
    assert config == MeshConfig(
        trust_domain="cluster.local",
        domain_suffix="cluster.local",
        root_namespace="istio-system",
        cluster_id="Kubernetes",
        network="",
    )


def test_apply_reports_only_real_changes() -> None:
    store = MeshStore()
    a, b = pod("a", ip="10.0.0.1", app="x"), pod("b", ip="10.0.0.2")

    changes = store.apply([a, b])
    assert changes.added == {a.key, b.key}
    assert not changes.updated and not changes.deleted and not changes.previous
    assert store.generation == 1

    # Equal objects (not the same instances) are no change.
    changes = store.apply([pod("a", ip="10.0.0.1", app="x")], [ObjectKey("Pod", "ns", "gone")])
    assert not changes
    assert store.generation == 1

    a2 = pod("a", ip="10.0.0.1", app="y")
    changes = store.apply([a2], [b.key])
    assert changes == ChangeSet(
        updated=frozenset({a.key}),
        deleted=frozenset({b.key}),
        previous=FrozenMap({a.key: a, b.key: b}),
    )
    assert store.generation == 2
    assert store.get(Pod, "ns", "a") is a2
    assert store.get(Pod, "ns", "b") is None
    assert len(store) == 1 and a.key in store and b.key not in store


def test_upsert_wins_over_delete_of_the_same_key() -> None:
    store = MeshStore()
    a = pod("a")
    store.apply([a])
    assert not store.apply([pod("a")], [a.key])  # deleted and re-added equal: no change
    assert store.get_by_key(a.key) == a


def test_last_upsert_of_a_key_wins() -> None:
    store = MeshStore()
    changes = store.apply([pod("a", app="1"), pod("a", app="2")])
    assert changes.added == {ObjectKey("Pod", "ns", "a")}
    stored = store.get(Pod, "ns", "a")
    assert stored is not None and stored.labels == {"app": "2"}


def test_get_checks_the_kind() -> None:
    store = MeshStore()
    store.apply([model(builders.namespace("ns"), Namespace), service("s")])
    assert store.namespace("ns") is not None
    assert store.get(Service, "ns", "s") is not None
    assert store.get(Pod, "ns", "s") is None


def test_objects_by_kind_and_namespace() -> None:
    store = MeshStore()
    objects: list[KubeObject] = [pod("a", "ns1"), pod("b", "ns2"), service("s", "ns1")]
    store.apply(objects)
    assert {p.name for p in store.objects(Pod)} == {"a", "b"}
    assert [p.name for p in store.objects(Pod, "ns1")] == ["a"]
    assert [s.name for s in store.services_in("ns1")] == ["s"]
    assert list(store.services_in("ns2")) == []
    store.apply([], [ObjectKey("Pod", "ns1", "a")])
    assert list(store.objects(Pod, "ns1")) == []


def test_pods_by_ip_follow_updates_and_deletes() -> None:
    store = MeshStore()
    # Host-network pods share the node's IP.
    store.apply([pod("a", ip="10.0.0.1"), pod("b", ip="10.0.0.1"), pod("c", ip="fd00::1")])
    assert sorted(p.name for p in store.pods_by_ip(ip_address("10.0.0.1"))) == ["a", "b"]
    assert [p.name for p in store.pods_by_ip(ip_address("fd00::1"))] == ["c"]

    store.apply([pod("a", ip="10.0.0.9")], [ObjectKey("Pod", "ns", "b")])
    assert store.pods_by_ip(ip_address("10.0.0.1")) == ()
    assert [p.name for p in store.pods_by_ip(ip_address("10.0.0.9"))] == ["a"]


def test_pods_with_labels() -> None:
    store = MeshStore()
    store.apply(
        [
            pod("r1", app="reviews", version="v1"),
            pod("r2", app="reviews", version="v2"),
            pod("p1", app="productpage", version="v1"),
            pod("other-ns", "ns2", app="reviews", version="v1"),
        ]
    )

    def names(selector: dict[str, str]) -> list[str]:
        return [p.name for p in store.pods_with_labels("ns", selector)]

    assert names({"app": "reviews"}) == ["r1", "r2"]
    assert names({"app": "reviews", "version": "v1"}) == ["r1"]
    assert names({"version": "v1"}) == ["p1", "r1"]
    assert names({"app": "ratings"}) == []
    assert names({"app": "reviews", "missing": "x"}) == []
    assert names({}) == ["p1", "r1", "r2"]  # empty selects everything in the namespace

    # Relabelling moves the pod between index buckets.
    store.apply([pod("r1", app="ratings")])
    assert names({"app": "reviews"}) == ["r2"]
    assert names({"app": "ratings"}) == ["r1"]
    store.apply([], [ObjectKey("Pod", "ns", "r2")])
    assert names({"app": "reviews"}) == []


A, B, C = (ObjectKey("Pod", "ns", name) for name in "abc")
OLD_A, OLD_B = pod("a"), pod("b")


@pytest.mark.parametrize(
    ("first", "later", "merged"),
    [
        # add then update: still an add, with no "previous"
        (
            ChangeSet(added=frozenset({A})),
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: OLD_A})),
            ChangeSet(added=frozenset({A})),
        ),
        # add then delete: nothing happened
        (
            ChangeSet(added=frozenset({A})),
            ChangeSet(deleted=frozenset({A}), previous=FrozenMap({A: OLD_A})),
            ChangeSet(),
        ),
        # delete then add: an update against the original object
        (
            ChangeSet(deleted=frozenset({A}), previous=FrozenMap({A: OLD_A})),
            ChangeSet(added=frozenset({A})),
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: OLD_A})),
        ),
        # update then update: the first previous is kept
        (
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: OLD_A})),
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: pod("a", app="mid")})),
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: OLD_A})),
        ),
        # update then delete: a delete of the original
        (
            ChangeSet(updated=frozenset({A}), previous=FrozenMap({A: OLD_A})),
            ChangeSet(deleted=frozenset({A}), previous=FrozenMap({A: pod("a", app="mid")})),
            ChangeSet(deleted=frozenset({A}), previous=FrozenMap({A: OLD_A})),
        ),
        # unrelated keys are united
        (
            ChangeSet(added=frozenset({A})),
            ChangeSet(
                deleted=frozenset({B}),
                updated=frozenset({C}),
                previous=FrozenMap({B: OLD_B, C: pod("c")}),
            ),
            ChangeSet(
                added=frozenset({A}),
                deleted=frozenset({B}),
                updated=frozenset({C}),
                previous=FrozenMap({B: OLD_B, C: pod("c")}),
            ),
        ),
    ],
)
def test_change_set_merge(first: ChangeSet, later: ChangeSet, merged: ChangeSet) -> None:
    assert first.merge(later) == merged


def test_merge_matches_applying_both_batches_at_once() -> None:
    store = MeshStore()
    store.apply([pod("a"), pod("b")])
    first = store.apply([pod("a", app="1"), pod("c")], [ObjectKey("Pod", "ns", "b")])
    second = store.apply([pod("b"), pod("a", app="2")], [ObjectKey("Pod", "ns", "c")])
    assert first.merge(second) == ChangeSet(
        updated=frozenset({A, B}), previous=FrozenMap({A: OLD_A, B: OLD_B})
    )


def test_change_set_summary() -> None:
    changes = ChangeSet(added=frozenset({A}), deleted=frozenset({ObjectKey("Service", "ns", "s")}))
    assert changes
    assert not ChangeSet()
    assert changes.keys == {A, ObjectKey("Service", "ns", "s")}
    assert changes.kinds == {"Pod", "Service"}
