"""CSDS over real gRPC on loopback: what each connected proxy was sent and whether it ACKed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, string_pb2

from xds.client import DeltaClient, SotwClient
from xds.proto.istio.workload import workload_pb2
from xds.resources import Resource
from xds.security.authn import Caller
from xds.security.identity import Identity
from xds.serving.ads import AdsService, Binding, ConnectionRegistry, Unauthenticated
from xds.serving.csds import (
    CsdsService,
    loopback_callers,
    system_namespace_callers,
)
from xds.serving.introspection import is_loopback_peer
from xds.serving.node import ProxyNode, ProxyType
from xds.serving.session import allow_all
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, CLUSTER, SECRET

from ..helpers import wait_until
from .conftest import workload

ZTUNNEL = "ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local"
WAYPOINT = "waypoint~10.0.1.5~waypoint-7d9-x1.bookinfo~bookinfo.svc.cluster.local"
PRIVATE_KEY = b"-----BEGIN PRIVATE KEY-----\nnot-for-your-eyes\n-----END PRIVATE KEY-----\n"


@dataclass
class Plane:
    store: ConfigStore
    connections: ConnectionRegistry
    address: str
    channels: list[grpc.aio.Channel]

    def channel(self) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.address)
        self.channels.append(channel)
        return channel

    def stub(self) -> Any:
        return csds_pb2_grpc.ClientStatusDiscoveryServiceStub(self.channel())

    async def fetch(self, *matchers: Any, **kw: Any) -> csds_pb2.ClientStatusResponse:
        request = csds_pb2.ClientStatusRequest(node_matchers=list(matchers), **kw)
        response: csds_pb2.ClientStatusResponse = await self.stub().FetchClientStatus(
            request, timeout=5
        )
        return response


async def bind(node: ProxyNode, caller: object) -> Binding:
    if node.type is ProxyType.ZTUNNEL:
        return Binding("ztunnel", allow_all)
    # Waypoints read their secrets from another scope, as on the TLS port.
    return Binding("waypoint", allow_all, type_scopes={SECRET: "identity"})


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    store = ConfigStore()
    store.upsert("ztunnel", [workload("a"), workload("b", b"\x0a\x00\x00\x02")])
    store.upsert("waypoint", [Resource(CLUSTER, "c1", b"one")])
    secret = secret_pb2.Secret(name="default")
    secret.tls_certificate.private_key.inline_bytes = PRIVATE_KEY
    store.upsert("identity", [Resource.from_message(SECRET, "default", secret)])
    store.commit()
    ready = asyncio.Event()
    ready.set()
    connections = ConnectionRegistry()
    ads = AdsService(store, bind, ready=ready, connections=connections)
    csds = CsdsService(connections, authorize=loopback_callers)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((ads.handler(), csds.handler()))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    result = Plane(store, connections, f"127.0.0.1:{port}", [])
    yield result
    for channel in result.channels:
        await channel.close()
    await server.stop(None)


async def connect_both(plane: Plane, *, nack_clusters: str | None = None) -> tuple[Any, Any]:
    """A ztunnel that ACKs everything and a waypoint that (maybe) NACKs clusters."""
    ztunnel = DeltaClient(plane.channel(), ZTUNNEL)
    await ztunnel.connect({ADDRESS: []})
    await ztunnel.next()
    waypoint = SotwClient(
        plane.channel(), WAYPOINT, nack=lambda t, r: nack_clusters if t == CLUSTER else None
    )
    await waypoint.connect({CLUSTER: [], SECRET: ["default"]})
    await waypoint.next()
    await waypoint.next()
    # Wait for the ACK (or NACK) of every response to be recorded.
    await wait_until(
        lambda: (
            len(plane.connections) == 2
            and all(s.state != "STALE" for c in plane.connections for s in c.statuses.values())
        )
    )
    return ztunnel, waypoint


def by_node(response: csds_pb2.ClientStatusResponse) -> dict[str, Any]:
    return {config.node.id: config for config in response.config}


def entries(config: Any, type_url: str) -> dict[str, Any]:
    """name -> GenericXdsConfig of one type ("" is the type's own status)."""
    return {e.name: e for e in config.generic_xds_configs if e.type_url == type_url}


async def test_fetch_reports_every_proxy_with_what_it_acked(plane: Plane) -> None:
    ztunnel, waypoint = await connect_both(plane, nack_clusters="cluster c1: bad protocol")
    configs = by_node(await plane.fetch())
    assert set(configs) == {ZTUNNEL, WAYPOINT}

    z = configs[ZTUNNEL]
    assert dict(z.node.metadata) == {
        "CLUSTER_ID": "Kubernetes",
        "NAMESPACE": "istio-system",
        "ISTIO_VERSION": "",
    }
    addresses = entries(z, ADDRESS)
    assert addresses[""].config_status == csds_pb2.SYNCED
    uid_a = "Kubernetes//Pod/default/a"
    assert set(addresses) == {"", uid_a, "Kubernetes//Pod/default/b"}
    entry = addresses[uid_a]
    assert entry.version_info == plane.store.view("ztunnel").get(ADDRESS, uid_a).version
    assert entry.client_status == 3  # ACKED
    sent = workload_pb2.Address()
    assert entry.xds_config.Unpack(sent)
    assert sent.workload.name == "a"

    w = configs[WAYPOINT]
    clusters = entries(w, CLUSTER)
    assert clusters[""].config_status == csds_pb2.ERROR
    assert clusters[""].error_state.details == "cluster c1: bad protocol"
    assert clusters[""].last_updated.seconds > 0
    assert clusters["c1"].client_status == 4  # NACKED
    assert entries(w, SECRET)[""].config_status == csds_pb2.SYNCED
    await ztunnel.close()
    await waypoint.close()


async def test_secrets_are_listed_but_never_sent_back(plane: Plane) -> None:
    ztunnel, waypoint = await connect_both(plane)
    response = await plane.fetch()
    secret = entries(by_node(response)[WAYPOINT], SECRET)["default"]
    assert secret.version_info and not secret.HasField("xds_config")
    assert b"not-for-your-eyes" not in response.SerializeToString()
    await ztunnel.close()
    await waypoint.close()


def match_id(**pattern: Any) -> node_pb2.NodeMatcher:
    return node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(**pattern))


@pytest.mark.parametrize(
    "matchers, expected",
    [
        ([match_id(exact=ZTUNNEL)], {ZTUNNEL}),
        ([match_id(exact="ztunnel-abc.istio-system")], {ZTUNNEL}),  # the short pod.ns id
        ([match_id(prefix="waypoint~")], {WAYPOINT}),
        ([match_id(suffix=".bookinfo")], {WAYPOINT}),
        ([match_id(contains="ZTUNNEL-ABC", ignore_case=True)], {ZTUNNEL}),
        ([match_id(contains="ZTUNNEL-ABC")], set()),
        ([match_id(prefix="ztunnel"), match_id(prefix="waypoint")], {ZTUNNEL, WAYPOINT}),  # OR
        ([node_pb2.NodeMatcher()], {ZTUNNEL, WAYPOINT}),
    ],
)
async def test_node_matchers_select_by_node_id(
    plane: Plane, matchers: list[Any], expected: set[str]
) -> None:
    ztunnel, waypoint = await connect_both(plane)
    assert set(by_node(await plane.fetch(*matchers))) == expected
    await ztunnel.close()
    await waypoint.close()


@pytest.mark.parametrize(
    "matcher, complaint",
    [
        (
            node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(safe_regex={"regex": "(a+)+$"})),
            "safe_regex is not supported",
        ),
        (
            node_pb2.NodeMatcher(node_metadatas=[{"path": [{"key": "NAMESPACE"}]}]),
            "node_metadatas is not supported",
        ),
    ],
)
async def test_unsupported_matchers_are_invalid_arguments(
    plane: Plane, matcher: Any, complaint: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await plane.fetch(matcher)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in (error.value.details() or "")


async def test_exclude_resource_contents(plane: Plane) -> None:
    ztunnel, waypoint = await connect_both(plane)
    config = by_node(await plane.fetch(exclude_resource_contents=True))[ZTUNNEL]
    named = [e for e in entries(config, ADDRESS).values() if e.name]
    assert len(named) == 2
    assert all(e.version_info and not e.HasField("xds_config") for e in named)
    await ztunnel.close()
    await waypoint.close()


async def test_stream_answers_each_request_with_the_current_state(plane: Plane) -> None:
    ztunnel = DeltaClient(plane.channel(), ZTUNNEL)
    await ztunnel.connect({ADDRESS: []})
    await ztunnel.next()
    requests: asyncio.Queue[Any] = asyncio.Queue()

    async def outgoing() -> AsyncIterator[Any]:
        while (request := await requests.get()) is not None:
            yield request

    call = plane.stub().StreamClientStatus(outgoing())
    await wait_until(
        lambda: all(s.state == "SYNCED" for c in plane.connections for s in c.statuses.values())
    )
    await requests.put(csds_pb2.ClientStatusRequest())
    first = by_node(await call.read())[ZTUNNEL]
    assert set(entries(first, ADDRESS)) == {
        "",
        "Kubernetes//Pod/default/a",
        "Kubernetes//Pod/default/b",
    }

    plane.store.upsert("ztunnel", [workload("c", b"\x0a\x00\x00\x03")])
    plane.store.commit()
    await ztunnel.next()
    await wait_until(
        lambda: all(s.state == "SYNCED" for c in plane.connections for s in c.statuses.values())
    )
    await requests.put(csds_pb2.ClientStatusRequest())
    second = by_node(await call.read())[ZTUNNEL]
    assert "Kubernetes//Pod/default/c" in entries(second, ADDRESS)
    await requests.put(None)
    await ztunnel.close()


async def test_debug_clients_are_not_reported(plane: Plane) -> None:
    """A stream that never subscribed to a type (istioctl's) is not a proxy."""
    ztunnel, waypoint = await connect_both(plane)
    idle = DeltaClient(plane.channel(), "sidecar~0.0.0.0~debug.istio-system~cluster.local")
    await idle.connect({})
    assert set(by_node(await plane.fetch())) == {ZTUNNEL, WAYPOINT}
    for client in (ztunnel, waypoint, idle):
        await client.close()


class FakeContext:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer


@pytest.mark.parametrize(
    "peer, admitted",
    [
        ("ipv4:127.0.0.1:50000", True),
        ("ipv6:[::1]:50000", True),
        ("ipv6:%5B::1%5D:50000", True),
        ("ipv4:10.1.2.3:50000", False),
        ("ipv6:[fd00::2]:50000", False),
        ("unix:/tmp/socket", False),
    ],
)
async def test_plaintext_port_admits_loopback_callers_only(peer: str, admitted: bool) -> None:
    assert is_loopback_peer(peer) is admitted
    refusal = await loopback_callers(FakeContext(peer))  # type: ignore[arg-type]
    assert (refusal is None) is admitted
    if refusal is not None:
        assert refusal.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "account, code",
    [
        ("istio-system/default", None),
        ("bookinfo/productpage", grpc.StatusCode.PERMISSION_DENIED),
        (None, grpc.StatusCode.PERMISSION_DENIED),  # anonymous (--insecure-dev-auth)
        ("no-token", grpc.StatusCode.UNAUTHENTICATED),
    ],
)
async def test_tls_port_admits_system_namespace_identities(
    account: str | None, code: grpc.StatusCode | None
) -> None:
    async def authenticate(context: Any) -> Caller:
        if account == "no-token":
            raise Unauthenticated("no credentials")
        identity = Identity.from_account(account) if account else None
        return Caller(identity=identity, authenticator="test")

    authorize = system_namespace_callers(authenticate, "istio-system")
    refusal = await authorize(FakeContext("ipv4:10.1.2.3:5"))  # type: ignore[arg-type]
    assert (refusal.code if refusal else None) == code
