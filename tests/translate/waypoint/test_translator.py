"""Scoping and incremental behaviour of the waypoint translator."""

from __future__ import annotations

from tests.builders import parse
from tests.translate.waypoint.everything import everything
from tests.translate.waypoint.fixtures import (
    OTHER,
    SHOP,
    gateway,
    mesh,
    other,
    pod,
    service,
    shop,
    snapshot,
)
from xds import type_urls
from xds.model.mesh import ChangeSet, MeshStore
from xds.model.meta import ObjectKey
from xds.resources import Update
from xds.translate.waypoint.translator import WaypointTranslator


def _start() -> tuple[MeshStore, WaypointTranslator, list[Update]]:
    store = mesh(*shop(), *other())
    translator = WaypointTranslator()
    return store, translator, translator.translate(store, None)


def _by_scope(updates: list[Update]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for update in updates:
        out.setdefault(update.scope, set()).add(update.type_url)
    return out


def test_every_waypoint_gets_its_own_complete_scope() -> None:
    _, _, updates = _start()
    scopes = _by_scope(updates)
    assert scopes == {
        SHOP: {type_urls.LISTENER, type_urls.CLUSTER, type_urls.ENDPOINT},
        OTHER: {type_urls.LISTENER, type_urls.CLUSTER, type_urls.ENDPOINT},
    }
    assert all(update.replace for update in updates)
    assert type_urls.ROUTE not in {update.type_url for update in updates}
    shop_clusters = snapshot(updates, SHOP)[type_urls.CLUSTER]
    other_clusters = snapshot(updates, OTHER)[type_urls.CLUSTER]
    # Each waypoint knows only its own services.
    assert not any("other.svc" in name for name in shop_clusters)
    assert not any("shop.svc" in name for name in other_clusters)
    assert "inbound-vip|9080|http|echo.other.svc.cluster.local" in other_clusters


def test_a_service_change_in_one_namespace_leaves_the_other_waypoint_alone() -> None:
    store, translator, _ = _start()
    changed = service(
        "shop", "reviews", "10.96.1.10", [{"name": "http", "port": 9090, "targetPort": "http"}]
    )
    changes = store.apply(parse(changed))
    updates = translator.translate(store, changes)
    assert set(_by_scope(updates)) == {SHOP}
    listeners = snapshot(updates, SHOP)[type_urls.LISTENER]
    assert any(
        "inbound-vip|9090|http|reviews" in chain["name"]
        for chain in listeners["main_internal"]["filter_chains"]
    )


def test_a_pod_change_only_touches_endpoints() -> None:
    store, translator, before = _start()
    changes = store.apply(
        parse(pod("shop", "reviews-v3", "10.244.1.12", {"app": "reviews", "version": "v3"}))
    )
    updates = translator.translate(store, changes)
    assert _by_scope(updates) == {SHOP: {type_urls.ENDPOINT}}
    old = snapshot(before, SHOP)[type_urls.ENDPOINT]
    new = snapshot(updates, SHOP)[type_urls.ENDPOINT]
    name = "inbound-vip|9080|http|reviews.shop.svc.cluster.local"
    # Only the assignment whose endpoints moved is rebuilt; the others stay as they are.
    [update] = updates
    assert not update.replace and not update.removals
    assert list(new) == [name]
    assert (
        len(new[name]["endpoints"][0]["lb_endpoints"])
        == len(old[name]["endpoints"][0]["lb_endpoints"]) + 1
    )


def test_a_pod_that_does_not_become_ready_changes_nothing() -> None:
    store, translator, _ = _start()
    changes = store.apply(
        parse(pod("shop", "reviews-v9", "10.244.1.19", {"app": "reviews"}, ready=False))
    )
    assert translator.translate(store, changes) == []


def test_irrelevant_kinds_are_skipped() -> None:
    store, translator, _ = _start()
    key = ObjectKey("PeerAuthentication", "shop", "default")
    assert translator.translate(store, ChangeSet(added=frozenset({key}))) == []


def test_a_full_rebuild_always_answers() -> None:
    store, translator, first = _start()
    again = translator.translate(store, None)
    assert _by_scope(again) == _by_scope(first)


def test_a_deleted_waypoint_empties_its_scope() -> None:
    store, translator, _ = _start()
    changes = store.apply([], [ObjectKey("Gateway", "other", "waypoint")])
    updates = translator.translate(store, changes)
    assert {(u.scope, u.type_url) for u in updates} == {
        (OTHER, type_urls.LISTENER),
        (OTHER, type_urls.CLUSTER),
        (OTHER, type_urls.ENDPOINT),
    }
    assert all(u.replace and not u.upserts for u in updates)


def test_gateways_that_are_not_waypoints_get_nothing() -> None:
    ingress = gateway(
        "shop", "ingress", cls="istio", listeners=[{"name": "http", "port": 80, "protocol": "HTTP"}]
    )
    updates = WaypointTranslator().translate(mesh(*shop(), ingress), None)
    assert set(_by_scope(updates)) == {SHOP}


def test_a_waypoint_with_nothing_bound_still_has_its_plumbing() -> None:
    updates = WaypointTranslator().translate(mesh(gateway("empty")), None)
    resources = snapshot(updates, "waypoint/empty/waypoint")
    assert set(resources[type_urls.LISTENER]) == {
        "connect_terminate",
        "main_internal",
        "connect_originate",
    }
    assert set(resources[type_urls.CLUSTER]) == {"main_internal", "encap", "connect_originate"}


def test_every_eds_cluster_has_an_assignment_and_nothing_else_does() -> None:
    updates = WaypointTranslator().translate(mesh(*everything()), None)
    for scope in (SHOP, OTHER):
        resources = snapshot(updates, scope)
        eds = {
            cluster["eds_cluster_config"]["service_name"]
            for cluster in resources[type_urls.CLUSTER].values()
            if cluster.get("type") == "EDS"
        }
        assert eds, scope
        assert eds == set(resources[type_urls.ENDPOINT]), scope
        for name, cluster in resources[type_urls.CLUSTER].items():
            if cluster.get("type") == "EDS":
                config = cluster["eds_cluster_config"]["eds_config"]
                assert config["ads"] == {} and config["initial_fetch_timeout"] == "0s", name
