"""The ADS service over real gRPC on loopback, with ztunnel-like and Envoy-like clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from xds.client import DeltaClient, SotwClient
from xds.resources import Resource
from xds.serving.ads import AdsService, ConnectionRegistry
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER

from ..helpers import wait_until
from .conftest import ZTUNNEL, bind, workload


@dataclass
class Server:
    store: ConfigStore
    ready: asyncio.Event
    connections: ConnectionRegistry
    channel: grpc.aio.Channel
    address: str

    def client(self, *, delta: bool = True, node_id: str = ZTUNNEL, **kw: Any) -> Any:
        cls = DeltaClient if delta else SotwClient
        return cls(grpc.aio.insecure_channel(self.address), node_id, **kw)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    store = ConfigStore()
    store.upsert("s", [workload("a"), workload("b", b"\x0a\x00\x00\x02")])
    store.commit()
    ready = asyncio.Event()
    ready.set()
    connections = ConnectionRegistry()
    service = AdsService(store, bind, ready=ready, connections=connections)
    grpc_server = grpc.aio.server()
    grpc_server.add_generic_rpc_handlers((service.handler(),))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    yield Server(store, ready, connections, channel, address)
    await channel.close()
    await grpc_server.stop(None)


def uid(name: str) -> str:
    return f"Kubernetes//Pod/default/{name}"


async def test_delta_ztunnel_flow(server: Server) -> None:
    client = server.client()
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    first = await client.next()
    assert first.type_url == ADDRESS and len(first.resources) == 2
    second = await client.next()
    assert second.type_url == AUTHORIZATION and len(second.resources) == 0
    await wait_until(
        lambda: all(s.state == "SYNCED" for c in server.connections for s in c.statuses.values())
    )

    server.store.upsert("s", [workload("c", b"\x0a\x00\x00\x03")])
    server.store.commit()
    push = await client.next()
    assert [r.name for r in push.resources] == [uid("c")] and not push.removed_resources

    server.store.remove("s", ADDRESS, [uid("a")])
    server.store.commit()
    push = await client.next()
    assert list(push.removed_resources) == [uid("a")] and not push.resources
    await client.close()


async def test_delta_reconnect_with_initial_resource_versions(server: Server) -> None:
    client = server.client()
    await client.connect({ADDRESS: []})
    await client.next()
    await client.close()
    await wait_until(lambda: len(server.connections) == 0)

    server.store.upsert("s", [workload("b", b"\x0a\x00\x00\x02", revision="v2")])
    server.store.remove("s", ADDRESS, [uid("a")])
    server.store.commit()
    await client.connect({ADDRESS: []})
    resync = await client.next()
    assert [r.name for r in resync.resources] == [uid("b")]
    assert list(resync.removed_resources) == [uid("a")]
    assert set(client.held[ADDRESS]) == {uid("b")}
    await client.close()


async def test_delta_nack_is_recorded(server: Server) -> None:
    client = server.client(nack=lambda t, r: "bad address" if r.resources else None)
    await client.connect({ADDRESS: []})
    await client.next()
    await wait_until(lambda: any(c.statuses[ADDRESS].state == "ERROR" for c in server.connections))
    [connection] = list(server.connections)
    assert connection.statuses[ADDRESS].last_error == "bad address"
    await client.close()


async def test_delta_explicit_subscribe_and_unsubscribe(server: Server) -> None:
    client = server.client()
    await client.connect({ADDRESS: [uid("a")]})
    first = await client.next()
    assert [r.name for r in first.resources] == [uid("a")]
    client.subscribe(ADDRESS, [uid("b")], unsubscribe=[uid("a")])
    second = await client.next()
    assert [r.name for r in second.resources] == [uid("b")]
    server.store.upsert("s", [workload("a", revision="v9")])
    server.store.commit()
    with pytest.raises(TimeoutError):
        await client.next(within=0.3)
    await client.close()


async def test_sotw_flow(server: Server) -> None:
    server.store.upsert("s", [Resource(CLUSTER, "c1", b"one")])
    server.store.commit()
    client = server.client(delta=False)
    await client.connect({CLUSTER: []})
    first = await client.next()
    assert [r.value for r in first.resources] == [b"one"]
    server.store.upsert("s", [Resource(CLUSTER, "c2", b"two")])
    server.store.commit()
    push = await client.next()
    assert sorted(r.value for r in push.resources) == [b"one", b"two"]
    await wait_until(lambda: all(c.statuses[CLUSTER].state == "SYNCED" for c in server.connections))
    await client.close()


async def test_not_ready_is_unavailable(server: Server) -> None:
    server.ready.clear()
    client = server.client()
    await client.connect({ADDRESS: []})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.next()
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    await client.close()


@pytest.mark.parametrize(
    "node_id, complaint",
    [
        ("", "must carry node.id"),
        ("ztunnel~10.0.0.1~podonly~d", "<pod>.<namespace>"),
        ("robot~10.0.0.1~p.ns~d", "unknown proxy type 'robot'"),
        ("ztunnel~not-an-ip~p.ns~d", "is not an IP address"),
    ],
)
async def test_malformed_node_is_invalid_argument(
    server: Server, node_id: str, complaint: str
) -> None:
    for delta in (True, False):
        client = server.client(delta=delta, node_id=node_id)
        await client.connect({ADDRESS: []})
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.next()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert complaint in (error.value.details() or "")
        await client.close()


async def test_one_change_to_100_streams_is_serialized_once(server: Server) -> None:
    clients = [server.client() for _ in range(100)]
    for client in clients:
        await client.connect({ADDRESS: []})
    for client in clients:
        await client.next()

    from xds.proto.istio.workload import workload_pb2

    message = workload_pb2.Address(workload=workload_pb2.Workload(uid=uid("new"), name="new"))
    serialize_calls = 0
    original = workload_pb2.Address.SerializeToString

    def counting(self: Any, **kw: Any) -> bytes:
        nonlocal serialize_calls
        serialize_calls += 1
        return original(self, **kw)

    workload_pb2.Address.SerializeToString = counting  # type: ignore[method-assign]
    try:
        server.store.upsert("s", [Resource.from_message(ADDRESS, uid("new"), message)])
        server.store.commit()
        pushes = [await client.next() for client in clients]
    finally:
        workload_pb2.Address.SerializeToString = original  # type: ignore[method-assign]
    assert all([r.name for r in p.resources] == [uid("new")] for p in pushes)
    assert serialize_calls == 1
    for client in clients:
        await client.close()


async def test_sotw_nack_keeps_state_and_is_recorded(server: Server) -> None:
    server.store.upsert("s", [Resource(CLUSTER, "c1", b"one")])
    server.store.commit()
    client = server.client(
        delta=False,
        nack=lambda t, r: (
            "bad cluster" if r.resources and r.resources[-1].value == b"bad" else None
        ),
    )
    await client.connect({CLUSTER: []})
    first = await client.next()
    # Let the ACK arrive first: an ACK that crosses a newer push is stale by design.
    await wait_until(lambda: all(c.statuses[CLUSTER].state == "SYNCED" for c in server.connections))
    server.store.upsert("s", [Resource(CLUSTER, "c1", b"bad")])
    server.store.commit()
    await client.next()
    await wait_until(lambda: any(c.statuses[CLUSTER].state == "ERROR" for c in server.connections))
    [connection] = list(server.connections)
    watch = connection.session.watches[CLUSTER]
    assert watch.status.last_error == "bad cluster"
    assert watch.acked_version_info == first.version_info  # the last good state
    await client.close()


async def test_sotw_unsubscribe_and_reconnect(server: Server) -> None:
    from xds.type_urls import ENDPOINT

    server.store.upsert("s", [Resource(ENDPOINT, "e1", b"1"), Resource(ENDPOINT, "e2", b"2")])
    server.store.commit()
    client = server.client(delta=False)
    await client.connect({ENDPOINT: ["e1", "e2"]})
    assert len((await client.next()).resources) == 2
    client.subscribe(ENDPOINT, ["e1"])  # drop e2: no answer expected
    with pytest.raises(TimeoutError):
        await client.next(within=0.3)
    [connection] = list(server.connections)
    assert connection.session.watches[ENDPOINT].names == {"e1"}
    server.store.upsert("s", [Resource(ENDPOINT, "e2", b"2b")])
    server.store.commit()
    with pytest.raises(TimeoutError):
        await client.next(within=0.3)
    client.subscribe(ENDPOINT, [])  # unsubscribe from everything
    await wait_until(lambda: not connection.session.watches[ENDPOINT].names)
    server.store.upsert("s", [Resource(ENDPOINT, "e1", b"1b")])
    server.store.commit()
    with pytest.raises(TimeoutError):
        await client.next(within=0.3)
    await client.close()
    await wait_until(lambda: len(server.connections) == 0)
    # A reconnecting SotW client is sent everything it asks for again.
    client = server.client(delta=False)
    await client.connect({ENDPOINT: ["e1", "e2"]})
    assert sorted(r.value for r in (await client.next()).resources) == [b"1b", b"2b"]
    await client.close()
