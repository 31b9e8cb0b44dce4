"""Change plans and the config directory they are applied to."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from loadtest import mesh
from loadtest.churn import ChurnSpec, Expect, Planner
from loadtest.meshfiles import MeshFiles, NotOurDirectory
from loadtest.meshgen import MeshSpec
from tests.builders import mesh_store, parse, parse_yaml
from xds import type_urls
from xds.translate.ztunnel import ZtunnelTranslator

SPEC = MeshSpec(pods=60, services=6, namespaces=3, waypoints=2, nodes=4, authorization_policies=4)


@pytest.fixture
def documents() -> list[dict[str, object]]:
    return mesh.manifests(SPEC, routes=4)


def ztunnel_names(documents: list[dict[str, object]]) -> dict[str, set[str]]:
    store = mesh_store(*parse(*documents))
    names: dict[str, set[str]] = {}
    for update in ZtunnelTranslator().translate(store, None):
        names.setdefault(update.type_url, set()).update(r.name for r in update.upserts)
    return names


def test_a_plan_touches_each_object_once_and_names_real_resources(
    documents: list[dict[str, object]],
) -> None:
    planner = Planner(documents)
    singles = planner.singles(6)
    schedule = planner.churn(
        ChurnSpec(
            pods_per_second=10,
            seconds=2,
            service_edits_per_second=1,
            policy_edits_per_second=1,
            route_edits_per_second=1,
        )
    )
    changes = singles + [s.change for s in schedule]
    assert Counter(c.kind for c in singles) == {"pod-relabel": 2, "pod-add": 2, "pod-remove": 2}
    refs = [c.ref for c in changes]
    assert len(refs) == len(set(refs))
    assert [s.offset for s in schedule] == sorted(s.offset for s in schedule)
    existing = ztunnel_names(documents)
    for change in changes:
        if change.kind == "pod-add":
            assert change.key not in existing[type_urls.ADDRESS]
        elif change.expect is not Expect.ANY:
            assert change.key in existing[change.type_url], change


def test_applied_changes_show_up_under_the_expected_names(
    documents: list[dict[str, object]], tmp_path: Path
) -> None:
    files = MeshFiles(tmp_path, pods_per_file=5)
    files.write(documents)
    planner = Planner(documents)
    changes = [
        planner.pod_add(),
        planner.pod_remove(),
        planner.pod_relabel(),
        planner.service_edit(),
        planner.policy_edit(),
    ]
    before = _versions(tmp_path)
    for change in changes:
        if change.manifest is None:
            files.delete(change.ref)
        else:
            files.put(change.manifest)
    after = _versions(tmp_path)
    for change in changes:
        if change.expect is Expect.REMOVE:
            assert change.key in before and change.key not in after
        else:
            assert after[change.key] != before.get(change.key), change.kind
    assert not list(tmp_path.glob(".*.tmp"))


def _versions(directory: Path) -> dict[str, str]:
    objects = [
        obj for path in sorted(directory.glob("*.yaml")) for obj in parse_yaml(path.read_text())
    ]
    store = mesh_store(*objects)
    return {
        r.name: r.version for u in ZtunnelTranslator().translate(store, None) for r in u.upserts
    }


def test_refuses_a_directory_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "someone-elses.yaml").write_text("kind: Namespace\n")
    with pytest.raises(NotOurDirectory):
        MeshFiles(tmp_path).write([])


def test_a_recycling_planner_never_runs_out_and_keeps_the_mesh_size(
    documents: list[dict[str, object]],
) -> None:
    """The soak's planner: objects go back to their pool, adds and removals balance."""
    planner = Planner(documents, recycle=True)
    pods = sum(1 for d in documents if d["kind"] == "Pod")
    live: dict[tuple[str, str, str], bool] = {}
    kinds: Counter[str] = Counter()
    makers = [planner.pod_relabel, planner.pod_add, planner.pod_relabel, planner.pod_remove]
    for turn in range(20 * pods):  # far more changes than objects
        change = makers[turn % len(makers)]()
        kinds[change.kind] += 1
        if change.kind in ("pod-add", "pod-remove"):
            live[change.ref] = change.kind == "pod-add"
    for _ in range(3 * len(documents)):
        planner.service_edit()
        planner.policy_edit()
    assert kinds["pod-add"] == kinds["pod-remove"] == 5 * pods
    # Every removal took a pod that existed (an original or an added one, never twice).
    removed = [ref for ref, alive in live.items() if not alive]
    assert len(removed) == len(set(removed))


def test_a_recycled_object_is_changed_from_its_last_state(
    documents: list[dict[str, object]],
) -> None:
    planner = Planner(documents, recycle=True)
    services = sum(
        1 for d in documents if d["kind"] == "Service" and d["metadata"]["name"] != "waypoint"
    )
    first = [planner.service_edit() for _ in range(services)]
    again = [planner.service_edit() for _ in range(services)]
    # The second round edits the same Services, each back to its original ports.
    assert [c.ref for c in first] == [c.ref for c in again]
    originals = {
        (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in documents
        if d["kind"] == "Service"
    }
    for change in again:
        assert change.manifest is not None
        assert change.manifest["spec"]["ports"] == originals[change.ref]["spec"]["ports"]
