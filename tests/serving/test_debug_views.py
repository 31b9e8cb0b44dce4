"""The debug views over HTTP and over ADS (istio.io/debug*), on sessions driven by hand."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2

from xds.proto.istio.workload import workload_pb2
from xds.resources import Resource, decode
from xds.serving.ads import Binding, Connection, ConnectionRegistry
from xds.serving.debug import EVERYTHING, DebugCaller, DebugEndpoints
from xds.serving.debug_xds import IstioDebugTypes
from xds.serving.delta import DeltaSession
from xds.serving.http import HttpRequest, HttpServer
from xds.serving.introspection import CLIENT_CONFIG_TYPE, control_plane_identifier
from xds.serving.node import parse_node_id
from xds.serving.session import Forbidden, ProtocolError, allow_all
from xds.serving.sotw import SotwSession
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, DEBUG, LISTENER

from .conftest import fetch, workload

ZTUNNEL = "ztunnel~10.0.0.9~ztunnel-a.istio-system~istio-system.svc.cluster.local"
WAYPOINT = "waypoint~10.0.1.5~waypoint-x.bookinfo~bookinfo.svc.cluster.local"
ISTIOCTL = "sidecar~0.0.0.0~istioctl.istio-system~cluster.local"
LOCAL = "ipv4:127.0.0.1:40000"


class Mesh:
    """A store and connections whose sessions are fed requests directly (no gRPC)."""

    def __init__(self) -> None:
        self.store = ConfigStore()
        self.store.upsert("ztunnel", [workload("a")])
        self.store.upsert("waypoint/bookinfo/waypoint", [Resource(CLUSTER, "c1", b"")])
        self.store.commit()
        self.connections = ConnectionRegistry()
        self.http = DebugEndpoints(
            ready=asyncio.Event(), connections=self.connections, store=self.store, decode=decode
        )
        self.types = IstioDebugTypes(self.connections, self.http, "istio-system")

    def connect(
        self,
        node_id: str,
        scope: str,
        *,
        delta: bool,
        identity: str | None = None,
        peer: str = LOCAL,
    ) -> Connection:
        session = (DeltaSession if delta else SotwSession)(self.store.view(scope))
        connection = Connection(
            parse_node_id(node_id), identity, Binding(scope, allow_all), session, peer, delta
        )
        self.connections.add(connection)
        return connection

    @staticmethod
    def subscribe(connection: Connection, type_url: str, *, reply: str | None = "ack") -> str:
        """Subscribe to a type; then ACK, NACK (``reply`` is the error) or stay silent (None)."""
        request_type: Any = (
            discovery_pb2.DeltaDiscoveryRequest
            if connection.delta
            else discovery_pb2.DiscoveryRequest
        )
        _, [response] = connection.session.receive(request_type(type_url=type_url))
        if reply is not None:
            answer = request_type(type_url=type_url, response_nonce=response.nonce)
            if reply != "ack":
                answer.error_detail.message = reply
            connection.session.receive(answer)
        return str(response.nonce)


@pytest.fixture
def mesh() -> Mesh:
    return Mesh()


def proxies(mesh: Mesh) -> dict[str, str]:
    """A ztunnel (addresses ACKed, policies NACKed) and a waypoint (clusters ACKed, listeners
    unanswered); returns the nonces sent."""
    ztunnel = mesh.connect(ZTUNNEL, "ztunnel", delta=True)
    waypoint = mesh.connect(WAYPOINT, "waypoint/bookinfo/waypoint", delta=False)
    return {
        "address": mesh.subscribe(ztunnel, ADDRESS),
        "authorization": mesh.subscribe(ztunnel, AUTHORIZATION, reply="bad policy"),
        "cluster": mesh.subscribe(waypoint, CLUSTER),
        "listener": mesh.subscribe(waypoint, LISTENER, reply=None),
    }


def json_of(mesh: Mesh, target: str, caller: DebugCaller = EVERYTHING) -> tuple[int, Any]:
    response = mesh.http.replay(target, caller)
    return response.status, json.loads(response.body)


def test_syncz_rows_have_istiods_shape(mesh: Mesh) -> None:
    nonces = proxies(mesh)
    status, rows = json_of(mesh, "syncz")
    assert status == 200
    waypoint, ztunnel = rows  # sorted by proxy id
    assert ztunnel["proxy"] == "ztunnel-a.istio-system" and ztunnel["proxy_type"] == "ztunnel"
    assert ztunnel["cluster_id"] == "Kubernetes"
    assert "cluster_sent" not in ztunnel  # omitted when empty, as istiod's omitempty
    assert ztunnel["resources"][ADDRESS] == {
        "sent": nonces["address"],
        "acked": nonces["address"],
        "state": "SYNCED",
        "sentTime": ztunnel["resources"][ADDRESS]["sentTime"],
    }
    policies = ztunnel["resources"][AUTHORIZATION]
    assert policies["sent"] == policies["nacked"] == nonces["authorization"]
    assert policies["state"] == "ERROR" and policies["lastError"] == "bad policy"
    assert "acked" not in policies
    assert waypoint["cluster_sent"] == waypoint["cluster_acked"] == nonces["cluster"]
    assert waypoint["listener_sent"] == nonces["listener"] and "listener_acked" not in waypoint
    assert waypoint["resources"][LISTENER]["state"] == "STALE"
    assert [r["proxy"] for r in json_of(mesh, "syncz?namespace=bookinfo")[1]] == [
        "waypoint-x.bookinfo"
    ]


def test_connections_and_adsz(mesh: Mesh) -> None:
    proxies(mesh)
    status, connections = json_of(mesh, "connections")
    assert status == 200 and connections["totalClients"] == 2
    assert {c["proxy"] for c in connections["clients"]} == {
        "ztunnel-a.istio-system",
        "waypoint-x.bookinfo",
    }
    status, adsz = json_of(mesh, "adsz?proxyID=ztunnel-a.istio-system")
    [client] = adsz["clients"]
    assert client["node"] == ZTUNNEL
    assert client["watches"] == {ADDRESS: ["*"], AUTHORIZATION: ["*"]}
    assert json_of(mesh, "adsz?proxyID=gone.default")[0] == 404


def test_config_dump_is_limited_to_the_callers_namespace(mesh: Mesh) -> None:
    proxies(mesh)
    bookinfo = DebugCaller("bookinfo")
    status, dump = json_of(mesh, "config_dump?proxyID=waypoint-x.bookinfo", bookinfo)
    assert status == 200 and [r["name"] for r in dump[CLUSTER]] == ["c1"]
    # Another namespace's proxy looks exactly like one that is not connected.
    hidden = json_of(mesh, "config_dump?proxyID=ztunnel-a.istio-system", bookinfo)
    assert hidden == (
        404,
        {"error": "proxy 'ztunnel-a.istio-system' is not connected to this instance"},
    )
    status, dump = json_of(mesh, "config_dump?proxyID=ztunnel-a.istio-system")
    assert status == 200 and dump[ADDRESS][0]["resource"]["workload"]["name"] == "a"
    assert json_of(mesh, "config_dump")[0] == 400
    assert mesh.http.replay("syncz", bookinfo).status == 403


def test_index_is_for_callers_that_may_read_everything(mesh: Mesh) -> None:
    everything = json_of(mesh, "")[1]["endpoints"]
    assert {"/debug/syncz", "/debug/config_dump", "/debug/loglevel"} <= set(everything)
    assert mesh.http.replay("", DebugCaller("bookinfo")).status == 403
    assert mesh.http.replay("nope", EVERYTHING).status == 404


def test_loglevel_changes_a_scope_at_runtime(mesh: Mesh) -> None:
    logger = logging.getLogger("xds.csds")
    before = logger.level
    try:
        # A GET never changes state.
        status, body = json_of(mesh, "loglevel?level=csds:debug")
        assert status == 405 and "PUT" in body["error"]
        assert logger.level == before

        def put(level: str) -> Any:
            request = HttpRequest("PUT", "/debug/loglevel", {"level": [level]}, {}, "127.0.0.1")
            return mesh.http.replay_request(request, EVERYTHING)

        response = put("csds:debug")
        assert response.status == 200 and json.loads(response.body)["csds"] == "debug"
        assert logger.level == logging.DEBUG
        assert put("csds:loud").status == 400
    finally:
        logger.setLevel(before)


async def test_routes_over_http(mesh: Mesh) -> None:
    proxies(mesh)
    server = HttpServer(mesh.http.routes(), methods=mesh.http.methods())
    port = await server.start("127.0.0.1", 0)
    try:
        status, body = await fetch(port, b"GET /debug/syncz?pretty HTTP/1.1\r\n\r\n")
        assert status == 200 and body.startswith(b"[\n  {")
        assert len(json.loads(body)) == 2
        index = await fetch(port, b"GET /debug HTTP/1.1\r\n\r\n")
        assert index[0] == 200
        assert await fetch(port, b"GET /debug/ HTTP/1.1\r\n\r\n") == index
        assert (await fetch(port, b"DELETE /debug/syncz HTTP/1.1\r\n\r\n"))[0] == 405
        status, _ = await fetch(port, b"PUT /debug/loglevel?level=csds:info HTTP/1.1\r\n\r\n")
        assert status == 200
        assert (await fetch(port, b"GET /version HTTP/1.1\r\n\r\n"))[0] == 200
    finally:
        await server.close()


# -- the ADS debug types ----------------------------------------------------------


def test_syncz_type_wraps_a_client_config_per_proxy(mesh: Mesh) -> None:
    proxies(mesh)
    istioctl = mesh.connect(ISTIOCTL, "debug", delta=False)
    resources = mesh.types.syncz(istioctl, [])
    assert [r.name for r in resources] == ["waypoint-x.bookinfo", "ztunnel-a.istio-system"]
    assert {r.type_url for r in resources} == {CLIENT_CONFIG_TYPE}
    config = csds_pb2.ClientConfig.FromString(resources[1].body)
    assert config.node.id == "ztunnel-a.istio-system"
    assert dict(config.node.metadata) == {
        "CLUSTER_ID": "Kubernetes",
        "NAMESPACE": "istio-system",
        "ISTIO_VERSION": "",
    }
    states = {c.type_url: c for c in config.generic_xds_configs}
    assert list(states) == sorted(states)
    assert states[ADDRESS].config_status == csds_pb2.SYNCED
    assert states[AUTHORIZATION].config_status == csds_pb2.ERROR
    assert states[AUTHORIZATION].error_state.details == "bad policy"
    assert all(not c.name and not c.HasField("xds_config") for c in states.values())


def test_config_dump_type(mesh: Mesh) -> None:
    proxies(mesh)
    istioctl = mesh.connect(ISTIOCTL, "debug", delta=False)
    [address] = mesh.types.config_dump(istioctl, ["ztunnel-a.istio-system"])
    assert address.type_url == ADDRESS
    assert workload_pb2.Address.FromString(address.body).workload.name == "a"

    sections = mesh.types.config_dump(istioctl, ["waypoint-x.bookinfo"])
    assert [s.type_url.rsplit(".", 1)[-1] for s in sections] == [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
        "ScopedRoutesConfigDump",
        "RoutesConfigDump",
    ]
    clusters = config_dump_shared_pb2.ClustersConfigDump.FromString(sections[1].body)
    assert [c.cluster.type_url for c in clusters.dynamic_active_clusters] == [CLUSTER]
    assert mesh.types.config_dump(istioctl, ["elsewhere.default"]) == []
    with pytest.raises(ProtocolError):
        mesh.types.config_dump(istioctl, [])


def test_debug_type_replays_an_http_path(mesh: Mesh) -> None:
    proxies(mesh)
    istioctl = mesh.connect(ISTIOCTL, "debug", delta=True)
    [answer] = mesh.types.debug(istioctl, ["syncz?namespace=bookinfo"])
    assert (answer.type_url, answer.name) == (DEBUG, "syncz?namespace=bookinfo")
    assert [row["proxy"] for row in json.loads(answer.body)] == ["waypoint-x.bookinfo"]
    [missing] = mesh.types.debug(istioctl, ["config_dump?proxyID=gone.default"])
    assert missing.body.startswith(b'{"statusCode": "404"}{"error"')
    with pytest.raises(ProtocolError):
        mesh.types.debug(istioctl, ["syncz", "adsz"])


def test_debug_types_need_a_known_caller(mesh: Mesh) -> None:
    proxies(mesh)
    remote = mesh.connect(ISTIOCTL, "debug", delta=False, peer="ipv4:10.1.1.1:5")
    with pytest.raises(Forbidden):
        mesh.types.syncz(remote, [])
    forged = mesh.connect(
        ISTIOCTL, "debug", delta=False, identity="istio-system (via x)", peer="ipv4:10.1.1.1:5"
    )
    with pytest.raises(Forbidden):
        mesh.types.syncz(forged, [])
    system = mesh.connect(
        ISTIOCTL,
        "debug",
        delta=False,
        peer="ipv4:10.1.1.1:5",
        identity="spiffe://cluster.local/ns/istio-system/sa/default (via tokens-file)",
    )
    assert len(mesh.types.syncz(system, [])) == 2
    tenant = mesh.connect(
        ISTIOCTL,
        "debug",
        delta=False,
        peer="ipv4:10.1.1.1:5",
        identity="spiffe://cluster.local/ns/bookinfo/sa/reviews (via x)",
    )
    assert [r.name for r in mesh.types.syncz(tenant, [])] == ["waypoint-x.bookinfo"]
    assert mesh.types.config_dump(tenant, ["ztunnel-a.istio-system"]) == []
    [refused] = mesh.types.debug(tenant, ["syncz"])
    assert refused.body.startswith(b'{"statusCode": "403"}')


def test_anonymous_dev_callers_follow_the_loopback_rule(mesh: Mesh) -> None:
    """With --insecure-dev-auth a caller may have no identity: then, like a caller on the
    plaintext port, only loopback may read debug types."""
    proxies(mesh)
    anonymous = "anonymous (via insecure-dev)"
    local = mesh.connect(ISTIOCTL, "debug", delta=False, identity=anonymous)
    assert len(mesh.types.syncz(local, [])) == 2
    remote = mesh.connect(
        ISTIOCTL, "debug", delta=False, identity=anonymous, peer="ipv4:10.1.1.1:5"
    )
    with pytest.raises(Forbidden):
        mesh.types.syncz(remote, [])


def test_control_plane_identifier_is_istiods_json() -> None:
    identifier = json.loads(control_plane_identifier("istiod-abc"))
    assert identifier["Component"] == "istiod" and identifier["ID"] == "istiod-abc"
    assert identifier["Info"]["version"]


def test_list_names_the_endpoints_as_istiod_does(mesh: Mesh) -> None:
    status, names = json_of(mesh, "list")
    assert status == 200 and names == sorted(names)
    assert {"syncz", "config_dump", "adsz", "connections"} <= set(names)
    assert "list" not in names and not any(n.startswith("/") for n in names)


def test_unknown_endpoint_answers_gos_404_text(mesh: Mesh) -> None:
    """istioctl x internal-debug recognises an unknown type by this exact text."""
    response = mesh.http.replay("no-such-thing", EVERYTHING)
    assert response.status == 404 and response.body == b"404 page not found\n"
