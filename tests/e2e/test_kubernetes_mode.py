"""``xds serve --kubernetes``: proxies follow a real API server, through its outages too."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient, SotwClient
from xds.plane.app import ControlPlane, ServeOptions
from xds.proto.istio.workload import workload_pb2
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, LISTENER

from ..conftest import REPO, scan_output
from ..helpers import eventually, free_port, http_ready, wait_until, xds
from ..kube.cluster import Cluster, fresh_namespace
from ..kube.objects import (
    WAYPOINT_CLASS,
    apply_all,
    authorization_policy,
    namespace,
    pod,
    pod_path,
    service,
    service_account,
    waypoint,
)
from .kube_plane import Changes, changes, kube_plane, kubernetes_options, ztunnel_client

pytestmark = pytest.mark.kube


def uid(ns: str, name: str) -> str:
    return f"Kubernetes//Pod/{ns}/{name}"


async def test_ztunnel_and_waypoint_follow_the_cluster(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("mode")
    api.ensure(WAYPOINT_CLASS)
    apply_all(
        api,
        namespace(ns, **{"istio.io/use-waypoint": "waypoint"}),
        service_account(ns, "default"),
        pod(ns, "web-1", "10.2.0.11"),
        service(ns, "web", "10.96.201.11"),
        waypoint(ns, "10.96.201.100"),
    )
    host = f"{ns}/web.{ns}.svc.cluster.local"
    async with (
        kube_plane(kube_cluster) as plane,
        grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}") as channel,
    ):
        ztunnel = ztunnel_client(channel)
        await ztunnel.connect({ADDRESS: [], AUTHORIZATION: []})
        await changes(ztunnel, lambda c: AUTHORIZATION in c.updated and ADDRESS in c.updated)
        assert {uid(ns, "web-1"), host} <= set(ztunnel.held[ADDRESS])

        waypoint_client = SotwClient(
            channel,
            f"waypoint~10.2.0.99~waypoint-6c5d-x1.{ns}~{ns}.svc.cluster.local",
            metadata={
                "LABELS": {"gateway.networking.k8s.io/gateway-name": "waypoint"},
                "NAMESPACE": ns,
            },
        )
        await waypoint_client.connect({CLUSTER: [], LISTENER: []})
        clusters = (await waypoint_client.next()).resources
        assert any("|80|" in c.value.decode(errors="replace") for c in clusters)

        # A readiness change (status patch): exactly that workload.
        api.merge_patch(
            pod_path(ns, "web-1") + "/status",
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        )
        seen = await changes(ztunnel, lambda c: bool(c.updated.get(ADDRESS)))
        assert seen == Changes({ADDRESS: {uid(ns, "web-1")}}, {ADDRESS: set()})
        workload = workload_pb2.Address.FromString(
            ztunnel.held[ADDRESS][uid(ns, "web-1")].body
        ).workload
        assert workload.status == workload_pb2.WorkloadStatus.UNHEALTHY

        # A label change: that workload again.
        api.merge_patch(pod_path(ns, "web-1"), {"metadata": {"labels": {"version": "v2"}}})
        seen = await changes(ztunnel, lambda c: bool(c.updated.get(ADDRESS)))
        assert seen.updated == {ADDRESS: {uid(ns, "web-1")}}

        # A Service port edit: the Service and the workload that carries its ports;
        # and the waypoint gets the new port's cluster.
        api.merge_patch(
            f"/api/v1/namespaces/{ns}/services/web",
            {"spec": {"ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}},
        )
        seen = await changes(ztunnel, lambda c: len(c.updated.get(ADDRESS, ())) >= 2)
        assert seen.updated == {ADDRESS: {host, uid(ns, "web-1")}}

        async def waypoint_has_port_8000() -> None:
            while True:
                response = await waypoint_client.next()
                if response.type_url == CLUSTER and any(
                    "|8000|" in c.value.decode(errors="replace") for c in response.resources
                ):
                    return

        await asyncio.wait_for(waypoint_has_port_8000(), 10)

        # An AuthorizationPolicy created, then deleted: that one resource each time.
        api.create(authorization_policy(ns, "deny"))
        seen = await changes(ztunnel, lambda c: bool(c.updated.get(AUTHORIZATION)))
        assert seen.updated == {AUTHORIZATION: {f"{ns}/deny"}}
        api.delete(f"/apis/security.istio.io/v1/namespaces/{ns}/authorizationpolicies/deny")
        seen = await changes(ztunnel, lambda c: bool(c.removed.get(AUTHORIZATION)))
        assert seen.removed == {AUTHORIZATION: {f"{ns}/deny"}}
        assert not seen.updated.get(AUTHORIZATION)
        await ztunnel.close()
        await waypoint_client.close()


async def test_losing_the_api_server_keeps_serving_then_converges(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("outage")
    apply_all(api, namespace(ns), service_account(ns, "default"), pod(ns, "web-1", "10.2.1.11"))
    async with (
        kube_plane(kube_cluster) as plane,
        grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}") as channel,
    ):
        ztunnel = ztunnel_client(channel)
        await ztunnel.connect({ADDRESS: [], AUTHORIZATION: []})
        await changes(ztunnel, lambda c: AUTHORIZATION in c.updated and ADDRESS in c.updated)
        held = dict(ztunnel.held[ADDRESS])
        kube_cluster.stop_apiserver()
        try:
            # Nothing is taken away, the plane stays ready, and it says why it is stale.
            with pytest.raises(TimeoutError):
                await ztunnel.next(within=1.5)
            assert ztunnel.held[ADDRESS] == held
            # (The plane runs in this event loop: HTTP calls go through a thread.)
            assert await asyncio.to_thread(http_ready, plane.ports.http)
            await eventually(lambda: _metric_shows(plane.ports.http, "0.0"), within=10)
        finally:
            kube_cluster.start_apiserver()
        api.merge_patch(
            pod_path(ns, "web-1"), {"metadata": {"labels": {"version": "after-outage"}}}
        )
        seen = await changes(
            ztunnel, lambda c: uid(ns, "web-1") in c.updated.get(ADDRESS, ()), within=30
        )
        assert not seen.removed.get(ADDRESS)
        await eventually(lambda: _metric_shows(plane.ports.http, "1.0"), within=10)
        await ztunnel.close()


async def test_streams_wait_until_the_cluster_has_been_read(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    """No API server behind the kubeconfig: never ready, streams get UNAVAILABLE."""
    dead = kube_cluster.write_kubeconfig(
        tmp_path / "dead", "token", server=f"https://127.0.0.1:{free_port()}"
    )
    xds_port, http_port = free_port(), free_port()
    plane = ControlPlane(
        ServeOptions(
            listen_host="127.0.0.1",
            xds_port=xds_port,
            secure_port=0,
            http_port=http_port,
            kubernetes=kubernetes_options(kube_cluster, dead),
        )
    )
    starting = asyncio.create_task(plane.start())
    try:
        await eventually(lambda: asyncio.to_thread(_answers, http_port), within=20)
        assert not await asyncio.to_thread(http_ready, http_port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = ztunnel_client(channel)
            await client.connect({ADDRESS: []})
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.next()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            await client.close()
        assert not starting.done()
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await plane.stop(grace=0)


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


async def _metric_shows(port: int, value: str) -> bool:
    metrics = await asyncio.to_thread(_get, port, "/metrics")
    return f'xds_kubernetes_watch_up{{resource="pods"}} {value}' in metrics


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


async def test_cli_serve_and_render_in_kubernetes_mode(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("cli")
    apply_all(
        api,
        namespace(ns),
        service_account(ns, "default"),
        pod(ns, "web-1", "10.2.2.11"),
        service(ns, "web", "10.96.202.11"),
    )
    api.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
    node = "ztunnel~10.244.0.2~ztunnel-x.istio-system~istio-system.svc.cluster.local"
    kubeconfig = str(kube_cluster.kubeconfig)
    rendered = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xds",
        "render",
        "--kubernetes",
        "--kubeconfig",
        kubeconfig,
        "--node",
        node,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(rendered.communicate(), 60)
    assert rendered.returncode == 0, err.decode()
    names = {item["name"] for item in json.loads(out)[ADDRESS]}
    assert {uid(ns, "web-1"), f"{ns}/web.{ns}.svc.cluster.local"} <= names

    xds_port, secure_port, http_port = free_port(), free_port(), free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "xds",
            "serve",
            "--kubernetes",
            "--kubeconfig",
            kubeconfig,
            "--listen-address",
            "127.0.0.1",
            "--xds-port",
            str(xds_port),
            "--secure-port",
            str(secure_port),
            "--http-port",
            str(http_port),
            cwd=REPO,
            stderr=log,
        )
    try:
        await wait_until(lambda: http_ready(http_port), within=60)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = DeltaClient(channel, node)
            await client.connect({ADDRESS: []})
            response = await client.next(within=10)
            assert uid(ns, "web-1") in {r.name for r in response.resources}
            await client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 10) == 0
        scan_output((tmp_path / "serve.log").read_text(errors="replace"))


def test_cli_refuses_mixed_sources() -> None:
    result = xds("serve", "--kubernetes", "--config", "/tmp")
    assert result.returncode == 2 and "alternatives" in result.stderr
    result = xds("serve", "--kubeconfig", "/tmp/k")
    assert result.returncode == 2 and "need --kubernetes" in result.stderr
