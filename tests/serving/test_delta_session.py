"""Delta protocol state, without sockets: subscriptions, ACK/NACK, reconnects, pushes."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds.resources import Resource, node_group
from xds.serving.delta import DeltaResponse, DeltaSession, SharedUpdates
from xds.serving.session import RequestKind
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION

from .conftest import workload


def request(**fields: object) -> discovery_pb2.DeltaDiscoveryRequest:
    fields.setdefault("type_url", ADDRESS)
    return discovery_pb2.DeltaDiscoveryRequest(**fields)


def store_with(*names: str) -> ConfigStore:
    store = ConfigStore()
    store.upsert("s", [workload(n) for n in names])
    store.commit()
    return store


def uid(name: str) -> str:
    return f"Kubernetes//Pod/default/{name}"


def test_wildcard_subscribe_gets_everything() -> None:
    session = DeltaSession(store_with("a", "b").view("s"))
    received, [response] = session.receive(request())
    assert received.kind is RequestKind.SUBSCRIBE
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(response.encode())
    assert {r.name for r in decoded.resources} == {uid("a"), uid("b")}
    assert not decoded.removed_resources


def test_new_wildcard_clients_share_bytes_and_versions() -> None:
    store = store_with("a", "b")
    first, second = DeltaSession(store.view("s")), DeltaSession(store.view("s"))
    _, [one] = first.receive(request())
    _, [two] = second.receive(request())
    assert one.everything is two.everything  # encoded once for every stream
    held_one = first.watches[ADDRESS].client_versions
    held_two = second.watches[ADDRESS].client_versions
    assert (
        dict(held_one)
        == dict(held_two)
        == {uid(n): store.view("s").get(ADDRESS, uid(n)).version for n in "ab"}
    )  # type: ignore[union-attr]
    # The next commit is encoded once for both, and both keep sharing the store's map.
    store.upsert("s", [workload("a", revision="v2"), workload("c", b"\x0a\x00\x00\x03")])
    store.remove("s", ADDRESS, [uid("b")])
    touched = store.commit()["s"]
    [push_one], [push_two] = first.push(touched), second.push(touched)
    assert push_one.everything is push_two.everything
    for push in (push_one, push_two):
        decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(push.encode())
        assert sorted(r.name for r in decoded.resources) == [uid("a"), uid("c")]
        assert list(decoded.removed_resources) == [uid("b")]
    assert held_one._base is held_two._base is store.view("s").versions(ADDRESS)
    assert dict(held_one) == {
        uid(n): store.view("s").get(ADDRESS, uid(n)).version  # type: ignore[union-attr]
        for n in "ac"
    }


def test_first_request_is_answered_even_when_empty() -> None:
    session = DeltaSession(ConfigStore().view("s"))
    _, [response] = session.receive(request(type_url=AUTHORIZATION))
    assert response.resources == [] and response.nonce


def test_ack_and_nack_are_recorded_and_not_answered() -> None:
    session = DeltaSession(store_with("a").view("s"))
    _, [first] = session.receive(request())
    received, responses = session.receive(request(response_nonce=first.nonce))
    assert received.kind is RequestKind.ACK and responses == []
    status = session.watches[ADDRESS].status
    assert status.state == "SYNCED" and status.acked_nonce == first.nonce

    store = session.view._store
    store.upsert("s", [workload("a", revision="v2")])
    touched = store.commit()["s"]
    [second] = session.push(touched)
    nack = request(response_nonce=second.nonce)
    nack.error_detail.message = "Kubernetes//Pod/default/a: bad address"
    received, responses = session.receive(nack)
    assert received.kind is RequestKind.NACK and responses == []
    assert received.error == "Kubernetes//Pod/default/a: bad address"
    assert status.state == "ERROR"
    assert status.acked_nonce == first.nonce  # the last good state is kept


def test_stale_nonce() -> None:
    session = DeltaSession(store_with("a").view("s"))
    session.receive(request())
    received, responses = session.receive(request(response_nonce="from-another-stream"))
    assert received.kind is RequestKind.STALE and responses == []


def test_explicit_names_and_unsubscribe() -> None:
    store = store_with("a", "b")
    session = DeltaSession(store.view("s"))
    _, [response] = session.receive(request(resource_names_subscribe=[uid("a")]))
    assert [r.name for r in response.resources] == [uid("a")]
    # b is not subscribed: a change to it reaches nobody
    store.upsert("s", [workload("b", revision="v2")])
    assert session.push(store.commit()["s"]) == []
    _, [response] = session.receive(request(resource_names_subscribe=[uid("b")]))
    assert [r.name for r in response.resources] == [uid("b")]
    _, responses = session.receive(request(resource_names_unsubscribe=[uid("a")]))
    assert responses == []
    store.upsert("s", [workload("a", revision="v3")])
    assert session.push(store.commit()["s"]) == []


def test_subscribing_a_missing_name_reports_it_removed() -> None:
    session = DeltaSession(store_with("a").view("s"))
    session.receive(request())
    _, [response] = session.receive(request(resource_names_subscribe=["nope"]))
    assert response.removed == ["nope"] and response.resources == []


def test_on_demand_subscribes_to_nothing_then_by_alias() -> None:
    session = DeltaSession(store_with("a").view("s"))
    _, [response] = session.receive(
        request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"])
    )
    assert response.resources == [] and response.removed == []
    # ztunnel asks by "network/ip"; the answer names the resource by uid and
    # echoes the key as removed so that ztunnel's waiter is released
    _, [response] = session.receive(request(resource_names_subscribe=["/10.0.0.1"]))
    assert [r.name for r in response.resources] == [uid("a")]
    assert response.removed == ["/10.0.0.1"]


def test_reconnect_sends_only_differences() -> None:
    store = store_with("a", "b", "c")
    versions = {n: store.view("s").get(ADDRESS, uid(n)).version for n in "abc"}  # type: ignore[union-attr]
    store.upsert("s", [workload("b", revision="v2")])
    store.remove("s", ADDRESS, [uid("c")])
    store.commit()
    session = DeltaSession(store.view("s"))
    held = {uid("a"): versions["a"], uid("b"): versions["b"], uid("c"): versions["c"]}
    _, [response] = session.receive(request(initial_resource_versions=held))
    assert [r.name for r in response.resources] == [uid("b")]
    assert response.removed == [uid("c")]


def test_push_carries_only_changes_and_removals() -> None:
    store = store_with("a", "b")
    session = DeltaSession(store.view("s"))
    session.receive(request())
    store.upsert("s", [workload("a"), workload("b", revision="v2"), workload("c")])
    store.remove("s", ADDRESS, [uid("a")])
    [response] = session.push(store.commit()["s"])
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(response.encode())
    assert sorted(r.name for r in decoded.resources) == [uid("b"), uid("c")]
    assert list(decoded.removed_resources) == [uid("a")]


def test_same_bytes_are_no_change() -> None:
    store = store_with("a")
    session = DeltaSession(store.view("s"))
    session.receive(request())
    store.upsert("s", [workload("a")])
    assert store.commit() == {}
    assert session.push({ADDRESS: [uid("a")]}) == []


def test_pushes_follow_make_before_break_order() -> None:
    from xds.resources import Resource
    from xds.type_urls import CLUSTER, ENDPOINT, LISTENER, SECRET

    store = ConfigStore()
    session = DeltaSession(store.view("s"))
    for type_url in (SECRET, LISTENER, ENDPOINT, CLUSTER):
        session.receive(request(type_url=type_url))
    store.upsert("s", [Resource(t, "x", t.encode()) for t in (SECRET, LISTENER, ENDPOINT, CLUSTER)])
    order = [r.type_url for r in session.push(store.commit()["s"])]
    assert order == [CLUSTER, ENDPOINT, LISTENER, SECRET]


def test_type_filter_forbids() -> None:
    import pytest

    from xds.serving.session import Forbidden

    session = DeltaSession(
        ConfigStore().view("s"),
        type_filter=lambda t: "no secrets here" if t == AUTHORIZATION else None,
    )
    with pytest.raises(Forbidden, match="no secrets here"):
        session.receive(request(type_url=AUTHORIZATION))


def test_a_client_behind_by_two_commits_gets_both() -> None:
    """The shared push only applies to a client exactly one commit behind; others
    are diffed on their own (here: the stream missed a commit, as a slow one does)."""
    store = store_with("a", "b")
    session = DeltaSession(store.view("s"))
    session.receive(request())
    store.upsert("s", [workload("a", revision="v2")])
    first = store.commit()["s"]
    store.remove("s", ADDRESS, [uid("b")])
    second = store.commit()["s"]
    merged = {ADDRESS: set(first[ADDRESS]) | set(second[ADDRESS])}
    [response] = session.push(merged)
    assert not response.everything
    assert [r.name for r in response.resources] == [uid("a")]
    assert response.removed == [uid("b")]
    assert dict(session.watches[ADDRESS].client_versions) == dict(store.view("s").versions(ADDRESS))


def test_in_sync_streams_are_written_one_response_per_commit() -> None:
    """Built and encoded once per commit, the same object for every stream it applies to
    (nonce included: it only has to be unique within each stream), and ACKed as usual."""
    store = store_with("a", "b")
    shared = SharedUpdates()
    sessions = [DeltaSession(store.view("s"), shared=shared) for _ in range(3)]
    for session in sessions:
        session.receive(request())
    behind = DeltaSession(store.view("s"), shared=shared)  # subscribes only after the commit
    store.upsert("s", [workload("a", revision="v2")])
    touched = store.commit()["s"]
    responses = [session.push(touched) for session in sessions]
    [[first], [second], [third]] = responses
    assert first is second is third
    assert first.encode() is third.encode()
    for session in sessions:
        received, answers = session.receive(request(response_nonce=first.nonce))
        assert received.kind is RequestKind.ACK and answers == []
    _, [own] = behind.receive(request())
    assert own is not first and own.nonce.count("-") != first.nonce.count("-")
    # The next commit is another response, with another nonce.
    store.remove("s", ADDRESS, [uid("b")])
    touched = store.commit()["s"]
    [[next_one], [next_two], _] = [session.push(touched) for session in sessions]
    assert next_one is next_two and next_one.nonce != first.nonce
    assert next_one.removed == [uid("b")]


def test_streams_behind_by_the_same_commits_share_their_catch_up() -> None:
    """Streams still being written to when more commits come (as under churn) are
    behind by several: those behind by the same commits get one response, built once."""
    store = store_with("a", "b", "c")
    shared = SharedUpdates()
    sessions = [DeltaSession(store.view("s"), shared=shared) for _ in range(3)]
    for session in sessions:
        session.receive(request())
    store.upsert("s", [workload("a", revision="v2")])
    first = store.commit()["s"]
    [[in_sync]] = [sessions[2].push(first)]  # the third keeps up
    store.remove("s", ADDRESS, [uid("b")])
    store.upsert("s", [workload("d")])
    second = store.commit()["s"]
    behind = {ADDRESS: set(first[ADDRESS]) | set(second[ADDRESS])}
    [one], [two] = sessions[0].push(behind), sessions[1].push(behind)
    assert one is two and one is not in_sync
    assert sorted(r.name for r in one.resources) == [uid("a"), uid("d")]
    assert one.removed == [uid("b")]
    [caught_up] = sessions[2].push(second)  # one commit behind: that commit
    assert caught_up is not one and caught_up.everything
    for session in sessions:
        held = session.watches[ADDRESS].client_versions
        assert held.is_exactly(store.view("s").versions(ADDRESS))
    nonces = {one.nonce, in_sync.nonce, caught_up.nonce}
    assert len(nonces) == 3
    received, _ = sessions[0].receive(request(response_nonce=one.nonce))
    assert received.kind is RequestKind.ACK


# -- subscriptions by name that imply more (ztunnel's on-demand mode) -------------------

SERVICE = "default/web.default.svc.cluster.local"


def grouped(name: str, ip: bytes, *groups: str, revision: str = "") -> Resource:
    plain = workload(name, ip, revision=revision)
    return Resource(ADDRESS, plain.name, plain.body, plain.aliases, groups)


def service_resource() -> Resource:
    return Resource(ADDRESS, SERVICE, b"service", aliases=["/10.96.0.10"])


def on_demand_store() -> ConfigStore:
    store = ConfigStore()
    store.upsert(
        "s",
        [
            grouped("local", b"\x0a\x00\x00\x01", node_group("node-a")),
            grouped("web-1", b"\x0a\x00\x00\x02", node_group("node-b"), SERVICE),
            grouped("other", b"\x0a\x00\x00\x03", node_group("node-b")),
            service_resource(),
        ],
    )
    store.commit()
    return store


def on_demand_session(store: ConfigStore) -> DeltaSession:
    return DeltaSession(store.view("s"), standing_groups={ADDRESS: {node_group("node-a")}})


def names_of(response: DeltaResponse) -> tuple[set[str], list[str]]:
    decoded = discovery_pb2.DeltaDiscoveryResponse.FromString(response.encode())
    return {r.name for r in decoded.resources}, list(decoded.removed_resources)


def test_subscribing_to_nothing_still_brings_the_own_node() -> None:
    session = on_demand_session(on_demand_store())
    _, [first] = session.receive(
        request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"])
    )
    assert names_of(first) == ({uid("local")}, [])


def test_a_vip_lookup_brings_the_service_and_its_workloads() -> None:
    store = on_demand_store()
    session = on_demand_session(store)
    session.receive(request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"]))
    _, [lookup] = session.receive(request(resource_names_subscribe=["/10.96.0.10"]))
    assert names_of(lookup) == ({SERVICE, uid("web-1")}, ["/10.96.0.10"])

    # A change of that workload, and a new one joining the Service, are pushed; a change
    # of a workload nobody asked for is not.
    store.upsert(
        "s",
        [
            grouped("web-1", b"\x0a\x00\x00\x02", node_group("node-b"), SERVICE, revision="v2"),
            grouped("web-2", b"\x0a\x00\x00\x04", node_group("node-b"), SERVICE),
            grouped("other", b"\x0a\x00\x00\x03", node_group("node-b"), revision="v2"),
        ],
    )
    [push] = session.push(store.commit()["s"])
    assert names_of(push) == ({uid("web-1"), uid("web-2")}, [])

    # Unsubscribing the Service stops what it implied (what is held is still kept
    # current until the client lets go of it).
    session.receive(request(resource_names_unsubscribe=[SERVICE]))
    store.upsert("s", [grouped("web-3", b"\x0a\x00\x00\x05", node_group("node-b"), SERVICE)])
    assert session.push(store.commit()["s"]) == []


def test_a_workload_joining_the_node_is_pushed_and_one_leaving_is_removed() -> None:
    store = on_demand_store()
    session = on_demand_session(store)
    session.receive(request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"]))
    store.upsert("s", [grouped("new", b"\x0a\x00\x00\x09", node_group("node-a"))])
    [joined] = session.push(store.commit()["s"])
    assert names_of(joined) == ({uid("new")}, [])
    store.remove("s", ADDRESS, [uid("local")])
    [left] = session.push(store.commit()["s"])
    assert names_of(left) == (set(), [uid("local")])


def test_a_reconnect_keeps_what_its_held_names_imply() -> None:
    store = on_demand_store()
    first = on_demand_session(store)
    first.receive(request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"]))
    first.receive(request(resource_names_subscribe=["/10.96.0.10"]))
    held = dict(first.watches[ADDRESS].client_versions)

    again = on_demand_session(store)
    _, [resumed] = again.receive(
        request(
            resource_names_subscribe=["*"],
            resource_names_unsubscribe=["*"],
            initial_resource_versions=held,
        )
    )
    assert names_of(resumed) == (set(), [])
    store.upsert("s", [grouped("web-2", b"\x0a\x00\x00\x04", node_group("node-b"), SERVICE)])
    [push] = again.push(store.commit()["s"])
    assert names_of(push) == ({uid("web-2")}, [])


def test_a_name_asked_for_is_always_answered() -> None:
    """ztunnel waits for a response naming what it asked for: a name it asks for again is
    sent again (it asks because it lost it), and a request is never met with silence."""
    store = on_demand_store()
    session = on_demand_session(store)
    session.receive(request(resource_names_subscribe=["*"], resource_names_unsubscribe=["*"]))
    _, [first] = session.receive(request(resource_names_subscribe=[uid("other")]))
    assert names_of(first) == ({uid("other")}, [])
    _, [again] = session.receive(request(resource_names_subscribe=[uid("other")]))
    assert names_of(again) == ({uid("other")}, [])
    _, [unknown] = session.receive(request(resource_names_subscribe=["/10.9.9.9"]))
    assert names_of(unknown) == (set(), ["/10.9.9.9"])
