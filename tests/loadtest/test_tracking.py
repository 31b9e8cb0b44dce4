"""Matching received names to applied changes, inside a client process."""

from __future__ import annotations

from loadtest.churn import NOBODY, Expect, node_audience
from loadtest.proxies import ProxySpec, ProxyState
from loadtest.tracking import Expectation, Tracker

ZT = ProxySpec(
    "ztunnel",
    "ztunnel~1.1.1.1~z.istio-system~istio-system.svc.cluster.local",
    {},
    "ztunnel",
    "istio-system/ztunnel",
)
WP = ProxySpec(
    "waypoint",
    "waypoint~1.1.1.2~w.ns~ns.svc.cluster.local",
    {},
    "waypoint/ns/waypoint",
    "ns/waypoint",
)


def states(*specs: ProxySpec, synced_at: float = 1.0) -> list[ProxyState]:
    return [
        ProxyState(i, spec, synced_at=synced_at, first_synced_at=synced_at)
        for i, spec in enumerate(specs)
    ]


def test_a_change_is_delivered_by_the_first_matching_report_after_it() -> None:
    proxies = states(ZT, ZT, WP)
    tracker = Tracker()
    tracker.track(["pod-a"])
    tracker.observed(proxies[0], "pod-a", 4.0, False)  # before the change: not it
    tracker.expect(Expectation(1, "pod-a", "ztunnel", Expect.UPSERT, 5.0), proxies)
    assert tracker.outstanding() == 1
    tracker.observed(proxies[0], "pod-a", 5.25, False)
    tracker.observed(proxies[1], "pod-a", 5.5, True)  # a removal does not deliver an update
    assert tracker.outstanding() == 1
    tracker.observed(proxies[1], "pod-a", 5.75, False)
    assert tracker.outstanding() == 0
    [delivery] = tracker.deliveries()
    assert delivery.affected == 2  # the waypoint is not in the ztunnel audience
    assert sorted(delivery.latencies) == [0.25, 0.75]
    assert delivery.missing == 0


def test_reports_that_arrive_before_the_expectation_are_kept() -> None:
    proxies = states(ZT)
    tracker = Tracker()
    tracker.observed(proxies[0], "pod-b", 2.5, True)
    tracker.expect(Expectation(7, "pod-b", "ztunnel", Expect.REMOVE, 2.0), proxies)
    [delivery] = tracker.deliveries()
    assert delivery.latencies == [0.5] and delivery.missing == 0


def test_proxies_not_synced_when_the_change_was_made_are_not_expected() -> None:
    late = states(ZT, synced_at=9.0)
    tracker = Tracker()
    tracker.expect(Expectation(1, "pod-c", "ztunnel", Expect.UPSERT, 5.0), late)
    assert tracker.deliveries()[0].affected == 0


def test_a_resync_before_delivery_is_counted_apart_not_as_missing() -> None:
    proxies = states(ZT, ZT)
    tracker = Tracker()
    tracker.expect(Expectation(1, "pod-d", "ztunnel", Expect.UPSERT, 5.0), proxies)
    tracker.resynced(proxies[0], 6.0)
    [delivery] = tracker.deliveries()
    assert (delivery.resynced, delivery.missing) == (1, 1)  # proxy 1 never got it


def test_waypoint_changes_match_any_config_response_of_that_waypoint() -> None:
    proxies = states(ZT, WP)
    tracker = Tracker()
    tracker.expect(
        Expectation(3, "waypoint/ns/waypoint", "waypoint/ns/waypoint", Expect.ANY, 1.5), proxies
    )
    tracker.observed(proxies[1], "waypoint/ns/waypoint", 1.75, False)
    [delivery] = tracker.deliveries()
    assert (delivery.affected, delivery.latencies) == (1, [0.25])


def test_on_demand_ztunnels_expect_their_node_and_the_policies() -> None:
    on_a = ProxySpec(
        "ztunnel",
        ZT.node_id,
        {},
        "ztunnel",
        "istio-system/ztunnel",
        also=(node_audience("node-a"),),
        on_demand=True,
    )
    on_b = ProxySpec(
        "ztunnel",
        ZT.node_id,
        {},
        "ztunnel",
        "istio-system/ztunnel",
        also=(node_audience("node-b"),),
        on_demand=True,
    )
    proxies = states(on_a, on_b)
    tracker = Tracker()
    tracker.expect(Expectation(1, "pod-e", node_audience("node-a"), Expect.UPSERT, 5.0), proxies)
    tracker.expect(Expectation(2, "ns/policy", "ztunnel", Expect.UPSERT, 5.0), proxies)
    tracker.expect(
        Expectation(3, "ns/svc.ns.svc.cluster.local", NOBODY, Expect.UPSERT, 5.0), proxies
    )
    assert [d.affected for d in tracker.deliveries()] == [1, 2, 0]
