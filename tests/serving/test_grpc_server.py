"""Transport settings of our gRPC servers, over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient
from xds.serving.ads import AdsService, ConnectionRegistry
from xds.serving.grpc_server import build_server
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS

from ..helpers import wait_until
from .conftest import ZTUNNEL, bind, workload


async def test_connections_end_at_their_max_age_and_clients_come_back() -> None:
    """istiod's keepaliveMaxServerConnectionAge: ADS streams never end by themselves, so
    without it proxies would stay on the replica they first reached."""
    store = ConfigStore()
    store.upsert("s", [workload("a")])
    store.commit()
    ready = asyncio.Event()
    ready.set()
    service = AdsService(store, bind, ready=ready, connections=ConnectionRegistry())
    server, _ = build_server(
        [service.handler()], [], max_connection_age=1.0, max_connection_age_grace=0.5
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            client = DeltaClient(channel, ZTUNNEL)
            await client.connect({ADDRESS: []})
            await client.next(within=5)
            opened = time.monotonic()
            try:
                await client.next(within=10)
                raise AssertionError("the stream got a response instead of ending")
            except grpc.aio.AioRpcError as ended:
                assert ended.code() is grpc.StatusCode.UNAVAILABLE
            lived = time.monotonic() - opened
            # Age (1 s, +-10 % jitter) plus the grace (0.5 s), measured from the first
            # response.
            assert 0.4 < lived < 1.1 + 0.5 + 1.0, lived

            again = DeltaClient(channel, ZTUNNEL)
            await again.connect({ADDRESS: []})
            response = await again.next(within=5)
            assert response.resources
            await again.close()
    finally:
        await server.stop(None)


async def test_a_stream_that_never_speaks_is_ended() -> None:
    store = ConfigStore()
    ready = asyncio.Event()
    ready.set()
    connections = ConnectionRegistry()
    service = AdsService(
        store, bind, ready=ready, connections=connections, first_request_timeout=0.3
    )
    server, _ = build_server([service.handler()], [])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            silent: asyncio.Queue[object] = asyncio.Queue()

            async def nothing() -> AsyncIterator[object]:
                yield await silent.get()  # never

            call = channel.stream_stream(
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
            )(nothing())
            started = time.monotonic()
            try:
                async for _ in call:
                    raise AssertionError("a response to a stream that sent nothing")
            except grpc.aio.AioRpcError as ended:
                assert ended.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                assert "no request within 0.3 s" in (ended.details() or "")
            assert time.monotonic() - started < 3
            assert len(connections) == 0
    finally:
        await server.stop(None)


async def test_a_client_that_stops_reading_does_not_hold_up_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With one push slot, a stream whose client reads nothing would hold it forever;
    the write timeout closes that stream, and the others get their pushes."""
    from envoy.service.discovery.v3 import discovery_pb2

    from xds.resources import Resource

    store = ConfigStore()
    big = b"\x0a" + b"x" * (3 << 20)  # 3 MB bodies: more than the flow-control windows
    store.upsert("s", [Resource(ADDRESS, "big-0", big)])
    store.commit()
    ready = asyncio.Event()
    ready.set()
    connections = ConnectionRegistry()
    service = AdsService(
        store,
        bind,
        ready=ready,
        connections=connections,
        push_limit=asyncio.Semaphore(1),
        write_timeout=1.0,
    )
    server, _ = build_server([service.handler()], [])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    options = [("grpc.max_receive_message_length", 64 << 20)]
    try:
        # No BDP probing on the stalled side: its window stays at 64 KB, so a write blocks
        # as soon as its buffer is full, whatever the machine's timing.
        async with (
            grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[*options, ("grpc.http2.bdp_probe", 0)]
            ) as stalled,
            grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as healthy,
        ):
            # The stalled client says who it is, then never reads a response.
            silent: asyncio.Queue[object] = asyncio.Queue()

            async def hello() -> AsyncIterator[object]:
                yield discovery_pb2.DeltaDiscoveryRequest(node={"id": ZTUNNEL}, type_url=ADDRESS)
                await silent.get()

            stuck = stalled.stream_stream(
                "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
                request_serializer=discovery_pb2.DeltaDiscoveryRequest.SerializeToString,
            )(hello())
            reader = DeltaClient(healthy, ZTUNNEL)
            await reader.connect({ADDRESS: []})
            await reader.next(within=10)
            for round_ in range(1, 6):  # pushes the stalled stream cannot take
                store.upsert("s", [Resource(ADDRESS, f"big-{round_}", big)])
                store.commit()
                pushed = await reader.next(within=10)
                assert [r.name for r in pushed.resources] == [f"big-{round_}"]
            # ... and the stalled stream was closed, not left holding the slot. (Its client
            # would see RESOURCE_EXHAUSTED after the bytes it never read.)
            await wait_until(lambda: len(connections) == 1, within=10)
            assert "client not reading; stream closed" in caplog.text
            stuck.cancel()
    finally:
        await server.stop(None)


async def test_new_streams_beyond_the_rate_are_refused(demo_copy: Path) -> None:
    from xds.type_urls import AUTHORIZATION

    from ..conftest import running_control_plane

    async with (
        running_control_plane(demo_copy, max_new_streams=5.0) as plane,
        grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}") as channel,
    ):

        async def one() -> str:
            client = DeltaClient(channel, ZTUNNEL)
            await client.connect({AUTHORIZATION: []})
            try:
                await client.next(within=5)
                return "served"
            except grpc.aio.AioRpcError as error:
                assert "too many new streams" in (error.details() or "")
                return error.code().name
            finally:
                await client.close()

        outcomes = await asyncio.gather(*(one() for _ in range(25)))
        # The burst (5), and those whose wait for a token fits in a second (~5 more).
        assert 5 <= outcomes.count("served") <= 12, outcomes
        assert outcomes.count("RESOURCE_EXHAUSTED") == 25 - outcomes.count("served")
