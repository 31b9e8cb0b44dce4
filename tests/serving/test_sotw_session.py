"""State-of-the-world protocol state, without sockets (istiod's ShouldRespond rules)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds.resources import Resource
from xds.serving.session import RequestKind
from xds.serving.sotw import SotwSession
from xds.serving.store import ConfigStore
from xds.type_urls import CLUSTER, ENDPOINT


def request(**fields: object) -> discovery_pb2.DiscoveryRequest:
    return discovery_pb2.DiscoveryRequest(**fields)


def cluster(name: str, body: bytes = b"c") -> Resource:
    return Resource(CLUSTER, name, name.encode() + body)


def cla(name: str, body: bytes = b"e") -> Resource:
    return Resource(ENDPOINT, name, name.encode() + body)


def setup() -> tuple[ConfigStore, SotwSession]:
    store = ConfigStore()
    store.upsert("s", [cluster("a"), cluster("b"), cla("a"), cla("b")])
    store.commit()
    return store, SotwSession(store.view("s"))


def test_empty_names_is_wildcard_for_cds_and_nothing_for_eds() -> None:
    _, session = setup()
    _, [cds] = session.receive(request(type_url=CLUSTER))
    assert {r.name for r in cds.resources} == {"a", "b"}
    _, [eds] = session.receive(request(type_url=ENDPOINT))
    assert eds.resources == []


def test_ack_nack_stale() -> None:
    store, session = setup()
    _, [first] = session.receive(request(type_url=CLUSTER))
    received, out = session.receive(
        request(type_url=CLUSTER, response_nonce=first.nonce, version_info=first.version)
    )
    assert received.kind is RequestKind.ACK and out == []
    store.upsert("s", [cluster("a", b"new")])
    [second] = session.push(store.commit()["s"])
    assert {r.name for r in second.resources} == {"a", "b"}  # CDS is sent whole
    nack = request(type_url=CLUSTER, response_nonce=second.nonce, version_info=first.version)
    nack.error_detail.message = "cluster a: bad"
    received, out = session.receive(nack)
    assert received.kind is RequestKind.NACK and out == [] and received.error == "cluster a: bad"
    watch = session.watches[CLUSTER]
    assert watch.acked_version_info == first.version
    assert watch.status.state == "ERROR"
    received, out = session.receive(request(type_url=CLUSTER, response_nonce=first.nonce))
    assert received.kind is RequestKind.STALE and out == []


def test_eds_name_changes() -> None:
    store, session = setup()
    _, [first] = session.receive(request(type_url=ENDPOINT, resource_names=["a"]))
    assert [r.name for r in first.resources] == ["a"]
    # adding a name: answered with the added one
    _, [second] = session.receive(
        request(type_url=ENDPOINT, resource_names=["a", "b"], response_nonce=first.nonce)
    )
    assert [r.name for r in second.resources] == ["b"]
    # removing a name: no answer
    received, out = session.receive(
        request(type_url=ENDPOINT, resource_names=["b"], response_nonce=second.nonce)
    )
    assert out == [] and received.kind is RequestKind.ACK
    # a change to the unsubscribed one reaches nobody; to the subscribed one, only it
    store.upsert("s", [cla("a", b"2"), cla("b", b"2")])
    [push] = session.push(store.commit()["s"])
    assert [r.name for r in push.resources] == ["b"]


def test_reconnect_without_nonce_gets_everything_again() -> None:
    _, session = setup()
    session.receive(request(type_url=CLUSTER))
    received, [again] = session.receive(request(type_url=CLUSTER))
    assert received.kind is RequestKind.SUBSCRIBE and len(again.resources) == 2


def test_removal_on_wildcard_type_sends_the_smaller_set() -> None:
    store, session = setup()
    session.receive(request(type_url=CLUSTER))
    store.remove("s", CLUSTER, ["b"])
    [push] = session.push(store.commit()["s"])
    assert [r.name for r in push.resources] == ["a"]
