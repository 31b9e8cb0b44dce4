"""Operating the control plane: sync status (HTTP and ADS, as istioctl asks), the model's
debug views, /metrics that move, the debug guard for remote callers, and the logs."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2
from prometheus_client.parser import text_string_to_metric_families

from xds.client import DeltaClient
from xds.logs import LineFormatter
from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from xds.proto.istio.workload import workload_pb2
from xds.security.plane import SecurityOptions
from xds.serving.introspection import CLIENT_CONFIG_TYPE
from xds.type_urls import (
    ADDRESS,
    AUTHORIZATION,
    CLUSTER,
    DEBUG,
    DEBUG_CONFIG_DUMP,
    DEBUG_SYNCZ,
    LISTENER,
    SECRET,
)

from ..conftest import running_control_plane
from ..helpers import wait_until
from ..security.support import ec_key, make_csr
from .debug_plane import (
    ACCOUNTS,
    GATEWAY_LABEL,
    WAYPOINT,
    ZTUNNEL,
    Plane,
    debug_plane_fixture,  # noqa: F401 - registers the debug_plane fixture
    http_get,
)
from .support import PRODUCTPAGE, edit

NACK_MESSAGE = "policy rejected: unknown field"


def nack_policies(type_url: str, response: Any) -> str | None:
    return NACK_MESSAGE if type_url == AUTHORIZATION else None


async def get_json(plane: Plane, target: str) -> Any:
    status, body = await http_get("127.0.0.1", plane.plane.ports.http, target)
    assert status == 200, body
    return json.loads(body)


async def test_syncz_over_http_and_over_ads(debug_plane: Plane) -> None:
    await debug_plane.ztunnel(nack=nack_policies)
    await debug_plane.waypoint()
    await debug_plane.settled(2)

    rows = {row["proxy"]: row for row in await get_json(debug_plane, "/debug/syncz")}
    assert set(rows) == {"ztunnel-a.istio-system", "waypoint-5d7f-abcde.bookinfo"}
    for proxy, row in rows.items():
        connection = debug_plane.connection(proxy)
        assert set(row["resources"]) == set(connection.statuses)
        for type_url, status in connection.statuses.items():
            reported = row["resources"][type_url]
            assert reported["sent"] == status.sent_nonce
            assert reported.get("acked", "") == status.acked_nonce
    ztunnel, waypoint = rows["ztunnel-a.istio-system"], rows["waypoint-5d7f-abcde.bookinfo"]
    assert ztunnel["proxy_type"] == "ztunnel" and ztunnel["istio_version"] == "1.29.0"
    assert ztunnel["resources"][ADDRESS]["state"] == "SYNCED"
    policies = ztunnel["resources"][AUTHORIZATION]
    assert policies["state"] == "ERROR" and policies["lastError"] == NACK_MESSAGE
    assert policies["nacked"] == policies["sent"] and "acked" not in policies
    assert waypoint["cluster_sent"] == waypoint["cluster_acked"]
    assert waypoint["listener_sent"] == waypoint["listener_acked"]

    # istioctl proxy-status: the same state over ADS on the TLS port.
    istioctl = debug_plane.istioctl()
    await istioctl.connect({DEBUG_SYNCZ: []})
    response = await istioctl.next()
    identifier = json.loads(response.control_plane.identifier)
    assert identifier["Component"] == "istiod" and identifier["Info"]["version"]
    configs = {}
    for packed in response.resources:
        assert packed.type_url == CLIENT_CONFIG_TYPE
        config = csds_pb2.ClientConfig.FromString(packed.value)
        configs[config.node.id] = {c.type_url: c for c in config.generic_xds_configs}
    assert set(configs) == set(rows)  # the istioctl stream itself is not a proxy
    z = configs["ztunnel-a.istio-system"]
    assert z[ADDRESS].config_status == csds_pb2.SYNCED
    assert z[AUTHORIZATION].config_status == csds_pb2.ERROR
    assert z[AUTHORIZATION].error_state.details == NACK_MESSAGE
    w = configs["waypoint-5d7f-abcde.bookinfo"]
    assert {w[CLUSTER].config_status, w[LISTENER].config_status} == {csds_pb2.SYNCED}

    # ... and the HTTP rows, nonces included, replayed over ADS (istio.io/debug).
    istioctl.subscribe(DEBUG, ["syncz"])
    replayed = await istioctl.next()
    assert replayed.type_url == DEBUG and replayed.resources[0].type_url == DEBUG
    assert {r["proxy"]: r["resources"] for r in json.loads(replayed.resources[0].value)} == {
        proxy: row["resources"] for proxy, row in rows.items()
    }

    istioctl.subscribe(DEBUG_CONFIG_DUMP, ["ztunnel-a.istio-system"])
    dump = await istioctl.next()
    workloads = [
        workload_pb2.Address.FromString(r.value) for r in dump.resources if r.type_url == ADDRESS
    ]
    assert "productpage-v1-d5789fdfb-4xjbq" in {a.workload.name for a in workloads}


async def test_istioctl_needs_a_system_namespace_identity(debug_plane: Plane) -> None:
    istioctl = debug_plane.istioctl("bookinfo/bookinfo-productpage")
    await istioctl.connect({DEBUG_SYNCZ: []})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await istioctl.next()
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_model_views_follow_a_file_change(debug_plane: Plane, demo_copy: Path) -> None:
    client = await debug_plane.ztunnel()
    await debug_plane.settled(1)
    await debug_plane.quiet()
    status = debug_plane.connection("ztunnel-a.istio-system").statuses[ADDRESS]
    responses = status.responses
    edit(demo_copy / "20-productpage.yaml", "podIP: 10.244.1.10", "podIP: 10.244.1.99")
    edit(demo_copy / "20-productpage.yaml", "- ip: 10.244.1.10", "- ip: 10.244.1.99")
    await wait_until(lambda: status.responses > responses and status.state == "SYNCED")
    assert PRODUCTPAGE in client.held[ADDRESS]

    push = await get_json(debug_plane, "/debug/push_status")
    assert push["full"] is False and push["kinds"] == ["Pod"]
    assert "ztunnel" in push["scopes_touched"] and push["duration_ms"] >= 0

    ambient = await get_json(debug_plane, "/debug/ambientz")
    [productpage] = [w for w in ambient["workloads"] if w["uid"] == PRODUCTPAGE]
    assert productpage["addresses"] == ["10.244.1.99"]
    assert any(
        s["hostname"] == "productpage.bookinfo.svc.cluster.local" for s in ambient["services"]
    )
    assert "ratings-from-reviews" in {p["name"] for p in ambient["policies"]}

    registry = await get_json(debug_plane, "/debug/registryz")
    assert registry["kinds"]["Pod"]["namespaces"]["bookinfo"] >= 1
    pods = await get_json(debug_plane, "/debug/registryz?kind=Pod")
    assert "10.244.1.99" in json.dumps(pods)
    authz = await get_json(debug_plane, "/debug/authorizationz")
    assert "ratings-from-reviews" in {p["meta"]["name"] for p in authz["authorization_policies"]}


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


class Metrics:
    def __init__(self, plane: Plane) -> None:
        self._plane = plane
        self.before: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.now: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    async def read(self) -> None:
        status, body = await http_get("127.0.0.1", self._plane.plane.ports.http, "/metrics")
        assert status == 200
        self.before, self.now = self.now, scrape(body.decode())

    def delta(self, name: str, **labels: str) -> float:
        """How much the summed samples named ``name`` (with ``labels``) moved."""

        def total(values: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
            return sum(
                v for (n, ls), v in values.items() if n == name and set(labels.items()) <= ls
            )

        return total(self.now) - total(self.before)


async def test_metrics_move(debug_plane: Plane, demo_copy: Path) -> None:
    metrics = Metrics(debug_plane)
    await metrics.read()
    client = await debug_plane.ztunnel(nack=nack_policies)
    await debug_plane.settled(1)
    await metrics.read()
    assert metrics.delta("pilot_xds", proxy_type="ztunnel") == 1
    assert metrics.delta("pilot_xds_pushes", type="wds") == 1
    assert metrics.delta("pilot_xds_pushes", type="wads") == 1
    assert metrics.delta("pilot_xds_config_size_bytes_count", type="wds") == 1
    assert metrics.delta("pilot_xds_config_size_bytes_sum", type="wds") > 1000
    assert metrics.delta("pilot_total_xds_rejects", type="wads") == 1

    await debug_plane.quiet()
    status = debug_plane.connection("ztunnel-a.istio-system").statuses[ADDRESS]
    acks = status.acks
    edit(
        demo_copy / "20-productpage.yaml",
        "podIP: 10.244.1.10",
        "podIP: 10.244.1.98",
        ("- ip: 10.244.1.10", "- ip: 10.244.1.98"),
    )
    await wait_until(lambda: status.acks > acks)
    await metrics.read()
    assert metrics.delta("pilot_k8s_reg_events", type="Pod", event="update") == 1
    assert metrics.delta("pilot_debounce_time_count") >= 1
    assert metrics.delta("pilot_proxy_convergence_time_count") >= 1
    assert metrics.delta("xds_change_to_ack_seconds_count", type="wds") >= 1
    assert metrics.delta("pilot_xds_pushes", type="wds") >= 1

    stub = ca_pb2_grpc.IstioCertificateServiceStub(debug_plane.channel(tls=True))
    csr = make_csr("spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage", ec_key())
    await stub.CreateCertificate(
        ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=600),
        metadata=debug_plane.auth("bookinfo/bookinfo-productpage"),
        timeout=10,
    )
    await metrics.read()
    assert metrics.delta("citadel_server_csr_count") == 1
    assert metrics.delta("citadel_server_success_cert_issuance_count") == 1

    await client.close()
    debug_plane.clients.remove(client)
    await wait_until(lambda: not debug_plane.plane.connections._connections)
    await metrics.read()
    assert metrics.delta("pilot_xds", proxy_type="ztunnel") == -1


def outward_address() -> str | None:
    """An address of this host that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


async def test_debug_endpoints_refuse_remote_callers_without_a_token(
    demo_copy: Path, tmp_path: Path
) -> None:
    host = outward_address()
    if host is None:
        pytest.skip("this host has no non-loopback address to call from")
    from xds.security.identity import Identity
    from xds.security.tokens import TokenGrant, add_grant

    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    tokens = {
        a: add_grant(ca_dir / "tokens", TokenGrant(Identity.from_account(a))) for a in ACCOUNTS
    }
    async with running_control_plane(
        demo_copy, listen_host=host, secure_port=-1, security=SecurityOptions(ca_dir=ca_dir)
    ) as plane:
        waypoint = DeltaClient(
            grpc.aio.insecure_channel(f"{host}:{plane.ports.xds}"),
            WAYPOINT,
            metadata={"LABELS": {GATEWAY_LABEL: "waypoint"}},
        )
        await waypoint.connect({CLUSTER: []})
        await waypoint.next()

        async def get(target: str, account: str | None = None, token: str = "") -> int:
            token = tokens[account] if account else token
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            status, _ = await http_get(host, plane.ports.http, target, headers)
            return status

        own = "/debug/config_dump?proxyID=waypoint-5d7f-abcde.bookinfo"
        assert await get("/metrics") == 200 and await get("/ready") == 200
        assert await get("/debug/syncz") == 401
        assert await get("/debug/syncz", token="not-a-token-0123456789") == 401
        assert await get("/debug/syncz", "bookinfo/bookinfo-productpage") == 403
        assert await get(own, "bookinfo/bookinfo-productpage") == 200
        assert (
            await get(
                "/debug/config_dump?proxyID=ztunnel-a.istio-system", "bookinfo/bookinfo-productpage"
            )
            == 404
        )
        assert await get("/debug/syncz", "istio-system/default") == 200
        assert await get(own, "istio-system/default") == 200
        await waypoint.close()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the control plane logs, at debug level, while the test runs."""
    lines: list[str] = []
    formatter = LineFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    root = logging.getLogger("xds")
    handler, level = Collect(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


async def test_stream_logs_carry_ids_and_never_credentials(
    debug_plane: Plane, log_lines: list[str]
) -> None:
    await debug_plane.ztunnel(nack=nack_policies)
    # A waypoint over TLS receives its private key over SDS.
    waypoint = DeltaClient(
        debug_plane.channel(tls=True),
        WAYPOINT,
        metadata={"LABELS": {GATEWAY_LABEL: "waypoint"}, "NAMESPACE": "bookinfo"},
        metadata_headers=debug_plane.auth("bookinfo/waypoint"),
    )
    debug_plane.clients.append(waypoint)
    await waypoint.connect({SECRET: ["default"]})
    secret = await waypoint.next()
    assert b"PRIVATE KEY" in secret.resources[0].resource.value
    await debug_plane.settled(2)
    forged = DeltaClient(
        debug_plane.channel(tls=True),
        ZTUNNEL,
        metadata_headers=[("authorization", "Bearer forged-0123456789abcdef")],
    )
    debug_plane.clients.append(forged)
    await forged.connect({ADDRESS: []})
    with pytest.raises(grpc.aio.AioRpcError):
        await forged.next()
    await waypoint.close()
    await wait_until(lambda: any(" disconnected " in line for line in log_lines))

    events = {"connected": 0, "disconnected": 0, "NACK": 0, "ACK": 0}
    for line in log_lines:
        _, _, scope, message, *fields = line.split(" ")
        if scope == "ads" and message in events:
            events[message] += 1
            assert any(f.startswith("conn=conn-") for f in fields), line
            assert any(f.startswith("proxy=") for f in fields), line
    assert all(events.values()), events
    text = "\n".join(log_lines)
    for token in [*debug_plane.tokens.values(), "forged-0123456789abcdef"]:
        assert token not in text
    assert "PRIVATE KEY" not in text


async def test_istioctl_requests_carry_their_own_nonce_and_are_answered(debug_plane: Plane) -> None:
    """istioctl's xDS client (pkg/adsc) sets ``ResponseNonce = time.Now().String()`` on every
    request, the first one included, and never ACKs debug responses."""
    import asyncio
    import datetime as dt

    from envoy.service.discovery.v3 import discovery_pb2

    from xds.client import make_node

    await debug_plane.ztunnel()
    await debug_plane.settled(1)
    requests: asyncio.Queue[Any] = asyncio.Queue()

    async def outgoing() -> Any:
        while (request := await requests.get()) is not None:
            yield request

    def now_nonce() -> str:
        return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC m=+0.0123")

    stream = debug_plane.channel(tls=True).stream_stream(
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
        request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
        response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
    )(outgoing(), metadata=debug_plane.auth("istio-system/default"))
    node = make_node(ISTIOCTL_NODE, {"GENERATOR": "event"})
    requests.put_nowait(
        discovery_pb2.DiscoveryRequest(node=node, type_url=DEBUG_SYNCZ, response_nonce=now_nonce())
    )
    syncz = await asyncio.wait_for(stream.read(), 5)
    assert syncz.type_url == DEBUG_SYNCZ and syncz.resources
    requests.put_nowait(
        discovery_pb2.DiscoveryRequest(
            node=node,
            type_url=DEBUG_CONFIG_DUMP,
            resource_names=["ztunnel-a.istio-system"],
            response_nonce=now_nonce(),
        )
    )
    dump = await asyncio.wait_for(stream.read(), 5)
    assert dump.type_url == DEBUG_CONFIG_DUMP and dump.resources
    # A client that does ACK (echoing our nonce) gets no answer to its ACK.
    requests.put_nowait(
        discovery_pb2.DiscoveryRequest(type_url=DEBUG_SYNCZ, response_nonce=syncz.nonce)
    )
    pending = asyncio.ensure_future(stream.read())
    done, _ = await asyncio.wait({pending}, timeout=0.5)
    assert not done
    pending.cancel()
    requests.put_nowait(None)
    stream.cancel()


ISTIOCTL_NODE = "sidecar~0.0.0.0~istioctl-2.istio-system~istio-system.svc.cluster.local"
