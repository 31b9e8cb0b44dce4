"""The config store's shared views: the versions map every in-sync stream holds."""

from __future__ import annotations

import random

from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS

from .conftest import workload


def uid(name: str) -> str:
    return f"Kubernetes//Pod/default/{name}"


def expected_versions(store: ConfigStore) -> dict[str, str]:
    table = store.table("s", ADDRESS)
    assert table is not None
    return {name: r.version for name, r in table.resources.items()}


def test_the_versions_map_follows_every_commit() -> None:
    """Built from the previous generation's map and the commit's names where it can be;
    whatever the order of writes, commits and reads, it is the table's versions."""
    rng = random.Random(14)
    store = ConfigStore()
    store.upsert("s", [workload(f"w{i}") for i in range(30)])
    store.commit()
    view = store.view("s")
    for _ in range(400):
        step = rng.random()
        name = f"w{rng.randrange(40)}"
        if step < 0.35:
            store.upsert("s", [workload(name, revision=str(rng.randrange(3)))])
        elif step < 0.55:
            store.remove("s", ADDRESS, [uid(name)])
        elif step < 0.65:  # read while writes are not committed yet
            view.versions(ADDRESS)
        elif step < 0.85:
            store.commit()
            if rng.random() < 0.7:  # a generation nobody read leaves no previous map
                assert view.versions(ADDRESS) == expected_versions(store)
        else:
            store.commit()
    store.commit()
    assert view.versions(ADDRESS) == expected_versions(store)


def test_a_commit_with_an_earlier_map_reuses_it() -> None:
    store = ConfigStore()
    store.upsert("s", [workload("a"), workload("b"), workload("c")])
    store.commit()
    view = store.view("s")
    before = view.versions(ADDRESS)
    store.upsert("s", [workload("a", revision="2"), workload("d")])
    store.remove("s", ADDRESS, [uid("b")])
    store.commit()
    after = view.versions(ADDRESS)
    assert after == expected_versions(store)
    assert set(after) == {uid("a"), uid("c"), uid("d")}
    assert after[uid("c")] == before[uid("c")]
    assert after[uid("a")] != before[uid("a")]
