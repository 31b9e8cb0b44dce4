"""Issue 5 acceptance: live traffic through a stock Envoy waypoint that our server configures.

Everything is a real process or socket on loopback (layout and the reasons for
it in ``waypoint_harness``): our ControlPlane serving a directory of manifests
with 127.77.x addresses, a waypoint Envoy started from ``xds bootstrap
waypoint`` output (TLS and a token on the secure port; certificate and root
over SDS), client and destination ztunnels played by Envoys with certificates
from our CA, and asyncio backends on the pod addresses.

The module runs twice, once per ADS flavour (``--delta``, ``--sotw``); the
mesh, the backends and the ztunnels are started once, a fresh waypoint Envoy
per flavour. Each flavour ends by comparing what Envoy holds with what our
server believes it ACKed.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import waypoint_harness as h
from tests.translate.waypoint import live
from tests.translate.waypoint.envoy_static import Certificates
from tests.translate.waypoint.fixtures import (
    gateway,
    http_route,
    meta,
    namespace,
    pod,
    policy,
    service,
    to_waypoint,
)
from xds import type_urls
from xds.security.identity import Identity

from ..helpers import free_port

pytestmark = pytest.mark.envoy

NS = "shop"
WAYPOINT_ADDRESS = "127.77.0.2"  # the Gateway's address: where client ztunnels send HBONE
WAYPOINT_POD = "127.77.0.3"
VIP = {
    "reviews": "127.77.1.1",
    "reviews-v1": "127.77.1.2",
    "reviews-v2": "127.77.1.3",
    "ratings": "127.77.1.4",
    "db": "127.77.1.5",
    "smtp": "127.77.1.6",
}
POD = {
    "reviews-v1": "127.77.2.1",
    "reviews-v2": "127.77.2.2",
    "ratings": "127.77.2.3",
    "db": "127.77.2.4",
    "smtp": "127.77.2.5",
}
SLEEP = f"spiffe://{h.TRUST_DOMAIN}/ns/{NS}/sa/sleep"
STRANGER = f"spiffe://{h.TRUST_DOMAIN}/ns/elsewhere/sa/stranger"
BANNER = b"220 smtp.shop ready\r\n"
BULK = bytes(range(256)) * 4096  # 1 MiB, far above every buffer on the way
SPLIT_REQUESTS = 500
EDIT_DEADLINE = 2.0


# -- the mesh, as manifests ------------------------------------------------------------


def route(*, generation: int, default: list[dict[str, Any]]) -> dict[str, Any]:
    """The reviews HTTPRoute: a header match to v2, and a default rule."""
    stamp = {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {
            "set": [{"name": "x-route-generation", "value": str(generation)}]
        },
    }
    return http_route(
        NS,
        "reviews",
        "reviews",
        [
            {
                "matches": [{"headers": [{"name": "x-canary", "value": "yes"}]}],
                "filters": [stamp],
                "backendRefs": [{"name": "reviews-v2", "port": 9080}],
            },
            {"filters": [stamp], "backendRefs": default},
        ],
        port=9080,
    )


ROUTE_90_10 = route(
    generation=1,
    default=[
        {"name": "reviews-v1", "port": 9080, "weight": 90},
        {"name": "reviews-v2", "port": 9080, "weight": 10},
    ],
)
ROUTE_ALL_V2 = route(generation=2, default=[{"name": "reviews-v2", "port": 9080}])


def mesh_manifests() -> list[dict[str, Any]]:
    tcp = [{"name": "tcp-echo", "port": 5432, "targetPort": 5432}]
    smtp = [
        {"name": "tcp-smtp", "port": 2525, "targetPort": 2525},
        {"name": "tcp-bulk", "port": 2526, "targetPort": 2526},
    ]
    return [
        namespace(NS),
        gateway(NS, address=WAYPOINT_ADDRESS),
        service(NS, "reviews", VIP["reviews"]),
        service(NS, "reviews-v1", VIP["reviews-v1"], selector={"app": "reviews", "version": "v1"}),
        service(NS, "reviews-v2", VIP["reviews-v2"], selector={"app": "reviews", "version": "v2"}),
        pod(NS, "reviews-v1-0", POD["reviews-v1"], {"app": "reviews", "version": "v1"}),
        pod(NS, "reviews-v2-0", POD["reviews-v2"], {"app": "reviews", "version": "v2"}),
        service(NS, "ratings", VIP["ratings"]),
        pod(NS, "ratings-0", POD["ratings"], {"app": "ratings"}),
        service(NS, "db", VIP["db"], tcp),
        pod(NS, "db-0", POD["db"], {"app": "db"}, container_ports=[{"containerPort": 5432}]),
        service(NS, "smtp", VIP["smtp"], smtp),
        pod(
            NS,
            "smtp-0",
            POD["smtp"],
            {"app": "smtp"},
            container_ports=[{"containerPort": 2525}, {"containerPort": 2526}],
        ),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta(NS, "ratings"),
            "spec": {
                "hosts": ["ratings"],
                "http": [
                    {
                        "name": "teapot",
                        "match": [{"uri": {"prefix": "/fault"}}],
                        "fault": {"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
                        "route": [{"destination": {"host": "ratings"}}],
                    },
                    {"name": "default", "route": [{"destination": {"host": "ratings"}}]},
                ],
            },
        },
        # L7 on the whole waypoint: only sleep, and only reading methods; the
        # second rule (ports only) is what TCP chains can evaluate.
        policy(
            NS,
            "only-sleep",
            {
                **to_waypoint(),
                "action": "ALLOW",
                "rules": [
                    {
                        "from": [
                            {"source": {"principals": [f"{h.TRUST_DOMAIN}/ns/{NS}/sa/sleep"]}}
                        ],
                        "to": [{"operation": {"methods": ["GET", "HEAD"]}}],
                    },
                    {
                        "from": [
                            {"source": {"principals": [f"{h.TRUST_DOMAIN}/ns/{NS}/sa/sleep"]}}
                        ],
                        "to": [{"operation": {"ports": ["5432", "2525", "2526"]}}],
                    },
                ],
            },
        ),
    ]


def write_route(directory: Path, document: dict[str, Any]) -> None:
    # Write-then-rename: the file source never reads a half-written file.
    temporary = directory / ".route.yaml.tmp"
    temporary.write_text(yaml.safe_dump(document, sort_keys=False))
    temporary.replace(directory / "route.yaml")


# -- module fixtures -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tunnel:
    target: str
    identity: str


TUNNELS = {
    "reviews": Tunnel(f"{VIP['reviews']}:9080", "sleep"),
    "reviews-stranger": Tunnel(f"{VIP['reviews']}:9080", "stranger"),
    "ratings": Tunnel(f"{VIP['ratings']}:9080", "sleep"),
    "echo": Tunnel(f"{VIP['db']}:5432", "sleep"),
    "echo-stranger": Tunnel(f"{VIP['db']}:5432", "stranger"),
    "banner": Tunnel(f"{VIP['smtp']}:2525", "sleep"),
    "bulk": Tunnel(f"{VIP['smtp']}:2526", "sleep"),
}


@dataclass
class Mesh:
    directory: Path
    config: Path
    loop: h.LoopThread
    secure: h.SecurePlane
    ports: dict[str, int]  # client ztunnel listener per tunnel name
    logs: dict[str, h.BackendLog]
    client: live.RunningEnvoy
    destination: live.RunningEnvoy


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    directory = tmp_path_factory.mktemp("waypoint-e2e")
    config = directory / "mesh"
    config.mkdir()
    (config / "mesh.yaml").write_text(yaml.safe_dump_all(mesh_manifests(), sort_keys=False))
    write_route(config, ROUTE_90_10)
    accounts = {
        "waypoint": f"{NS}/waypoint",
        "sleep": f"{NS}/sleep",
        "stranger": "elsewhere/stranger",
        "reviews": f"{NS}/reviews",
        "ratings": f"{NS}/ratings",
        "db": f"{NS}/db",
        "smtp": f"{NS}/smtp",
    }
    with h.exclusive_hbone_port(), h.LoopThread() as loop, ExitStack() as stack:
        secure = h.start_secure_plane(loop, config, directory, accounts)
        plane, tokens, ca_root = secure.plane, secure.tokens, secure.ca_root
        logs = {name: h.BackendLog() for name in ("reviews-v1", "reviews-v2", "ratings")}
        servers = [h.serve_http(name, POD[name], 9080, log) for name, log in logs.items()]
        servers += [
            h.serve_echo(POD["db"], 5432),
            h.serve_write_then_close(POD["smtp"], 2525, BANNER),
            h.serve_write_then_close(POD["smtp"], 2526, BULK),
        ]
        for server in servers:
            started = loop.run(server)
            loop.stack.push_async_callback(h.close_server, started)

        root_pem = ca_root.read_bytes()
        certs = {
            name: h.issue_certificate(
                plane.ports.secure,
                root_pem,
                tokens[name],
                directory / "certs",
                name,
                Identity.from_account(account).uri,
            )
            for name, account in accounts.items()
            if name != "waypoint"
        }
        assert certs["sleep"].spiffe_id == SLEEP and certs["stranger"].spiffe_id == STRANGER

        # One destination ztunnel, a listener per pod on <pod IP>:15008, each
        # presenting the identity of the pod behind it (as ztunnel does).
        listeners = []
        for pod_name, address in POD.items():
            account = pod_name.split("-v")[0]
            issued = certs[account]
            identity = Certificates(ca_root, issued.chain, issued.key)
            dest = live.destination_ztunnel(
                address, h.HBONE_PORT, identity, issued.chain, issued.key
            )
            listeners.append(
                {**dest["static_resources"]["listeners"][0], "name": f"hbone-{pod_name}"}
            )
        dest["static_resources"]["listeners"] = listeners
        destination = stack.enter_context(live.envoy("destination", dest, directory))

        ports = {name: free_port() for name in TUNNELS}
        client_config = live.client_ztunnel(
            [
                live.Tunnel(name, tunnel.target, tunnel.identity, ports[name])
                for name, tunnel in TUNNELS.items()
            ],
            h.HBONE_PORT,
            Certificates(ca_root, certs["sleep"].chain, certs["sleep"].key),
            {who: (certs[who].chain, certs[who].key) for who in ("sleep", "stranger")},
            waypoint_address=WAYPOINT_ADDRESS,
        )
        client = stack.enter_context(live.envoy("client", client_config, directory))
        yield Mesh(directory, config, loop, secure, ports, logs, client, destination)


@dataclass
class Waypoint:
    mesh: Mesh
    flavour: str
    envoy: live.RunningEnvoy
    pod_name: str

    @property
    def ports(self) -> dict[str, int]:
        return self.mesh.ports


@pytest.fixture(scope="module", params=["delta", "sotw"])
def waypoint(request: pytest.FixtureRequest, mesh: Mesh) -> Iterator[Waypoint]:
    flavour: str = request.param
    # A pod name per flavour, so the last test can tell the two streams apart.
    pod_name = f"waypoint-{flavour}"
    with h.waypoint_envoy(
        mesh.secure,
        mesh.directory,
        namespace=NS,
        pod_name=pod_name,
        pod_ip=WAYPOINT_POD,
        delta=flavour == "delta",
    ) as envoy:
        # Ready as Kubernetes would probe it, then every dynamic listener active
        # (they warm until SDS delivers the certificate), then traffic.
        h.wait_until(lambda: _all_listeners_active(envoy), 20, "active listeners")
        h.wait_until(lambda: _answers(mesh.ports["reviews"]), 20, "first request")
        yield Waypoint(mesh, flavour, envoy, pod_name)


def _all_listeners_active(envoy: live.RunningEnvoy) -> bool:
    view = h.envoy_view(h.config_dump(envoy))
    return not view.warming and {"connect_terminate", "main_internal", "connect_originate"} <= set(
        view.versions[type_urls.LISTENER]
    )


def _answers(port: int) -> bool:
    try:
        return live.get(port, "/ready").status == 200
    except OSError:
        return False


# -- clients -----------------------------------------------------------------------------


def get_json(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[live.Reply, dict[str, Any]]:
    reply = live.get(port, path, headers)
    body = json.loads(reply.body) if reply.status == 200 else {}
    return reply, body


def tcp_exchange(port: int, payload: bytes = b"", timeout: float = 10) -> bytes:
    """Send ``payload``, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        if payload:
            connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        received = bytearray()
        with suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                received += chunk
    return bytes(received)


def stat(envoy: live.RunningEnvoy, name: str) -> int:
    return envoy.stats().get(name, 0)


# -- the tests -----------------------------------------------------------------------------


def test_service_vip_traffic_crosses_the_waypoint(waypoint: Waypoint) -> None:
    mesh = waypoint.mesh
    tunnels = stat(waypoint.envoy, "http.connect_terminate.downstream_rq_total")
    served = mesh.loop.call(lambda: {name: log.requests for name, log in mesh.logs.items()})
    reply, body = get_json(waypoint.ports["reviews"], "/hello")
    assert reply.status == 200, reply
    assert body["backend"] in ("reviews-v1", "reviews-v2")
    assert body["path"] == "/hello"
    # Nothing listens on the VIP: the waypoint took the CONNECT to the VIP,
    # applied the route (its response header), and tunnelled to a pod.
    assert reply.headers["x-route-generation"] == "1"
    assert "x-request-id" in body["headers"]  # added by the waypoint's HCM
    assert stat(waypoint.envoy, "http.connect_terminate.downstream_rq_total") > tunnels
    # ... which the destination ztunnel terminated (the tunnel to a pod is
    # pooled, so it may predate this request) and delivered to that pod.
    assert stat(mesh.destination, "http.hbone.downstream_rq_total") >= 1
    assert (
        mesh.loop.call(lambda: mesh.logs[body["backend"]].requests) == served[body["backend"]] + 1
    )


def test_weighted_route_splits_90_10(waypoint: Waypoint) -> None:
    counts: Counter[str] = Counter()
    # One keep-alive connection: each request is routed on its own.
    connection = http.client.HTTPConnection("127.0.0.1", waypoint.ports["reviews"], timeout=10)
    try:
        for index in range(SPLIT_REQUESTS):
            connection.request("GET", f"/split/{index}")
            reply = connection.getresponse()
            assert reply.status == 200
            counts[json.loads(reply.read())["backend"]] += 1
    finally:
        connection.close()
    assert sum(counts.values()) == SPLIT_REQUESTS
    print(f"[{waypoint.flavour}] {SPLIT_REQUESTS} requests split {dict(counts)}")
    share = counts["reviews-v1"] / SPLIT_REQUESTS
    # Binomial(500, 0.9): sd 1.3 points; 5 points is almost 4 sd.
    assert 0.85 <= share <= 0.95, counts


def test_header_match_selects_the_backend(waypoint: Waypoint) -> None:
    for _ in range(10):
        reply, body = get_json(waypoint.ports["reviews"], "/canary", {"x-canary": "yes"})
        assert reply.status == 200
        assert body["backend"] == "reviews-v2"
    # A different value is not a match: the default rule (90/10) decides.
    backends = {
        get_json(waypoint.ports["reviews"], "/x", {"x-canary": "no"})[1]["backend"]
        for _ in range(20)
    }
    assert "reviews-v1" in backends


def test_authorization_policy_on_the_waypoint_checks_spiffe_ids(waypoint: Waypoint) -> None:
    assert live.get(waypoint.ports["reviews"], "/allowed").status == 200
    denied = live.get(waypoint.ports["reviews-stranger"], "/allowed")
    assert denied.status == 403
    assert b"RBAC" in denied.body
    # L7: the same allowed identity with a method the policy does not allow.
    connection = http.client.HTTPConnection("127.0.0.1", waypoint.ports["reviews"], timeout=10)
    try:
        connection.request("DELETE", "/allowed")
        assert connection.getresponse().status == 403
    finally:
        connection.close()
    logs = waypoint.mesh.logs
    assert (
        waypoint.mesh.loop.call(lambda: sum(log.methods.get("DELETE", 0) for log in logs.values()))
        == 0
    )
    # The TCP chain applies the L4 rule: the stranger's connection is closed
    # without a byte from the backend.
    assert tcp_exchange(waypoint.ports["echo-stranger"], b"hello\n") == b""


def test_fault_abort_returns_the_configured_status(waypoint: Waypoint) -> None:
    ratings = waypoint.mesh.logs["ratings"]
    before = ratings.requests
    reply = live.get(waypoint.ports["ratings"], "/fault/now")
    assert reply.status == 418
    assert b"fault filter abort" in reply.body
    assert waypoint.mesh.loop.call(lambda: ratings.requests) == before  # never reached it
    reply, body = get_json(waypoint.ports["ratings"], "/fine")
    assert reply.status == 200 and body["backend"] == "ratings"


def test_route_edit_changes_live_traffic_within_2s(waypoint: Waypoint) -> None:
    mesh = waypoint.mesh
    pid = waypoint.envoy.process.pid
    updates = stat(waypoint.envoy, "listener_manager.lds.update_success")
    written = time.monotonic()
    write_route(mesh.config, ROUTE_ALL_V2)
    try:
        elapsed = _until_generation(waypoint.ports["reviews"], "2", written)
        print(f"[{waypoint.flavour}] route edit reached traffic after {elapsed * 1000:.0f} ms")
        assert elapsed < EDIT_DEADLINE, f"the edit took {elapsed:.2f} s to reach traffic"
        # Every default request now goes to v2, with no restart of Envoy.
        for _ in range(20):
            reply, body = get_json(waypoint.ports["reviews"], "/after")
            assert body["backend"] == "reviews-v2", reply
        assert waypoint.envoy.process.poll() is None
        assert waypoint.envoy.process.pid == pid
        assert stat(waypoint.envoy, "listener_manager.lds.update_success") > updates
    finally:
        written = time.monotonic()
        write_route(mesh.config, ROUTE_90_10)
        _until_generation(waypoint.ports["reviews"], "1", written)


def _until_generation(port: int, generation: str, since: float) -> float:
    """Seconds from ``since`` until a new connection sees the route ``generation``."""
    deadline = since + 10
    while time.monotonic() < deadline:
        # A new connection each time: one that stays open keeps the filter
        # chain it started with until the old chain drains.
        reply = live.get(port, "/probe")
        if reply.headers.get("x-route-generation") == generation:
            return time.monotonic() - since
        time.sleep(0.02)
    raise AssertionError(f"route generation {generation} never arrived")


def test_tcp_passes_bytes_both_ways(waypoint: Waypoint) -> None:
    payload = bytes(range(256)) * 256  # 64 KiB, then a half-close
    assert tcp_exchange(waypoint.ports["echo"], payload) == payload


def test_tcp_backend_that_writes_and_closes_at_once(waypoint: Waypoint) -> None:
    # waypoint.md section 13: these bytes used to be lost on the internal
    # hops; bootstrap.RUNTIME_OVERRIDES keeps them (diagnosis there).
    for _ in range(5):
        assert tcp_exchange(waypoint.ports["banner"]) == BANNER
    received = tcp_exchange(waypoint.ports["bulk"])
    assert len(received) == len(BULK)
    assert received == BULK


def test_no_nack_and_envoy_agrees_with_our_ack_tracking(waypoint: Waypoint) -> None:
    """Runs last for each flavour: nothing in the run was rejected, and Envoy
    holds exactly what our server recorded as ACKed."""
    mesh = waypoint.mesh
    stats = waypoint.envoy.stats()
    for counter in ("cluster_manager.cds.update_rejected", "listener_manager.lds.update_rejected"):
        assert stats.get(counter, 0) == 0, counter
    assert stats.get("control_plane.connected_state") == 1
    dump = h.config_dump(waypoint.envoy)
    view = h.envoy_view(dump)
    assert view.errors == [], view.errors
    assert view.warming == []
    assert view.empty_assignments == []
    assert view.versions[type_urls.CLUSTER] and view.versions[type_urls.LISTENER]
    assert view.versions[type_urls.SECRET].keys() == {"default", "ROOTCA"}
    # The certificate Envoy serves HBONE with is the waypoint's, from our CA.
    assert h.certificate_uris(waypoint.envoy) == [f"spiffe://{h.TRUST_DOMAIN}/ns/{NS}/sa/waypoint"]

    def server() -> list[h.ServerView]:
        return [
            h.server_view(c, mesh.secure.plane.store)
            for c in h.waypoint_connections(mesh.secure.plane.connections, waypoint.pod_name)
        ]

    # Envoy ACKs right after applying: give the last ACK a moment to land.
    h.wait_until(
        lambda: all(s == "SYNCED" for v in mesh.loop.call(server) for s in v.states.values()),
        5,
        "every type SYNCED",
    )
    [ours] = mesh.loop.call(server)
    assert ours.delta == (waypoint.flavour == "delta")
    assert set(ours.states) == {
        type_urls.CLUSTER,
        type_urls.ENDPOINT,
        type_urls.LISTENER,
        type_urls.SECRET,
    }
    assert set(ours.states.values()) == {"SYNCED"}, ours.states
    assert sum(ours.nacks.values()) == 0, ours.nacks
    assert all(count > 0 for count in ours.acks.values()), ours.acks
    for type_url, held in view.versions.items():
        # The same resources on both sides ...
        assert held.keys() == ours.versions[type_url].keys(), type_url
    # ... with the same content (listeners and clusters, compared whole) ...
    for type_url in (type_urls.LISTENER, type_urls.CLUSTER):
        envoy_holds = h.envoy_resources(dump, type_url)
        for name, body in ours.bodies[type_url].items():
            assert h.normalized(type_url, envoy_holds[name]) == h.normalized(type_url, body), name
    if ours.delta:
        # ... in the same versions (Delta versions are per resource). Not for
        # listeners: after an in-place (filter-chain-only) update, as the route
        # edit causes, Envoy 1.40's config dump keeps the listener's previous
        # version_info though it shows the new content; nor for EDS, which it
        # dumps without versions.
        for type_url in (type_urls.CLUSTER, type_urls.SECRET):
            assert view.versions[type_url] == ours.versions[type_url], type_url
    else:
        # SotW: Envoy reports the version_info of the last response it applied.
        for type_url, version in view.type_versions.items():
            assert version, type_url
            assert version == ours.acked_version_info[type_url], type_url
