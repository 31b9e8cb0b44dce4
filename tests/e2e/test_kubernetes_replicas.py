"""Two ``xds serve --kubernetes`` replicas on one API server: one Lease holder writes,
both serve, and when the holder is killed the other takes over within the lease."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient
from xds.type_urls import ADDRESS

from ..conftest import REPO, scan_output
from ..helpers import eventually, free_port, http_ready, kill_tree, wait_until
from ..kube.cluster import Api, ApiError, Cluster, fresh_namespace
from ..kube.objects import WAYPOINT_CLASS, apply_all, namespace, node, pod
from .kube_plane import ztunnel_client
from .support import gateway

pytestmark = pytest.mark.kube

LEASE_SECONDS = 3.0


@dataclass
class Replica:
    name: str
    process: asyncio.subprocess.Process
    xds_port: int
    http_port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text()


@asynccontextmanager
async def replica(
    name: str, kubeconfig: Path, system: str, directory: Path
) -> AsyncIterator[Replica]:
    xds_port, secure_port, http_port = free_port(), free_port(), free_port()
    log = directory / f"{name}.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "xds",
            "serve",
            "--kubernetes",
            "--kubeconfig",
            str(kubeconfig),
            "--listen-address",
            "127.0.0.1",
            "--xds-port",
            str(xds_port),
            "--secure-port",
            str(secure_port),
            "--http-port",
            str(http_port),
            "--system-namespace",
            system,
            "--lease-duration",
            str(LEASE_SECONDS),
            "--recheck-interval",
            "1",
            cwd=REPO,
            stderr=stderr,
            env={**os.environ, "POD_NAME": name},
        )
    try:
        yield Replica(name, process, xds_port, http_port, log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 15)
        scan_output(log.read_text(errors="replace"))


def lease_holder(api: Api, system: str) -> str:
    try:
        lease = api.get(
            f"/apis/coordination.k8s.io/v1/namespaces/{system}/leases/istiod-xds-leader"
        )
    except ApiError:
        return ""
    return str(lease["spec"].get("holderIdentity") or "")


def exists(api: Api, path: str) -> bool:
    try:
        api.get(path)
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


async def address_names(client: DeltaClient, wanted: str, within: float) -> None:
    deadline = time.monotonic() + within
    while wanted not in client.held.get(ADDRESS, {}):
        await client.next(within=max(0.01, deadline - time.monotonic()))


async def test_one_replica_writes_and_the_other_takes_over(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    api = kube_cluster.api()
    system = fresh_namespace("sys")
    ns = fresh_namespace("ha")
    api.ensure(WAYPOINT_CLASS, node("node-a", "zone-a"))
    apply_all(api, namespace(system), namespace(ns), pod(ns, "web-1", "10.7.0.11"))
    async with (
        replica("replica-a", kube_cluster.kubeconfig, system, tmp_path) as a,
        replica("replica-b", kube_cluster.kubeconfig, system, tmp_path) as b,
    ):
        await wait_until(lambda: http_ready(a.http_port) and http_ready(b.http_port), within=60)
        holder = lease_holder(api, system)
        leader, follower = (a, b) if holder.startswith("replica-a_") else (b, a)
        assert holder.startswith(f"{leader.name}_")

        # One CA for both: the leader created the Secret, the other read it.
        secret = api.get(f"/api/v1/namespaces/{system}/secrets/istio-ca-secret")
        assert secret["type"] == "istio.io/ca-root"

        # Both serve xDS.
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{r.xds_port}") for r in (a, b)]
        try:
            clients: dict[str, DeltaClient] = {}
            for r, channel in zip((a, b), channels, strict=True):
                clients[r.name] = ztunnel_client(channel)
                await clients[r.name].connect({ADDRESS: []})
                await address_names(clients[r.name], f"Kubernetes//Pod/{ns}/web-1", 10)

            # Only the leader writes: the root ConfigMap and a waypoint's objects.
            api.create(gateway(ns, "waypoint"))
            await eventually(
                lambda: asyncio.to_thread(
                    exists, api, f"/apis/apps/v1/namespaces/{ns}/deployments/waypoint"
                ),
                within=15,
            )
            await eventually(
                lambda: asyncio.to_thread(
                    exists, api, f"/api/v1/namespaces/{ns}/configmaps/istio-ca-root-cert"
                ),
                within=15,
            )
            assert "waypoint Deployment created" in leader.text()
            assert "became the leader" not in follower.text()
            assert "waypoint Deployment created" not in follower.text()
            assert "root certificate published" not in follower.text()

            # The leader dies without a word: the follower takes the Lease when it expires.
            killed_at = time.monotonic()
            kill_tree(leader.process.pid)  # every process of it, none told
            await leader.process.wait()
            await eventually(
                lambda: asyncio.to_thread(
                    lambda: lease_holder(api, system).startswith(f"{follower.name}_")
                ),
                within=LEASE_SECONDS * 3,
            )
            took_over = time.monotonic() - killed_at
            # Within one lease duration plus a retry period (and the test's polling).
            assert took_over < LEASE_SECONDS * 2, took_over

            # ... and writes go on: a new namespace gets its root, a new Gateway its objects.
            other = fresh_namespace("ha2")
            apply_all(api, namespace(other), pod(other, "web-2", "10.7.0.12"))
            api.create(gateway(other, "waypoint"))
            await eventually(
                lambda: asyncio.to_thread(
                    exists, api, f"/api/v1/namespaces/{other}/configmaps/istio-ca-root-cert"
                ),
                within=15,
            )
            await eventually(
                lambda: asyncio.to_thread(
                    exists, api, f"/apis/apps/v1/namespaces/{other}/deployments/waypoint"
                ),
                within=15,
            )
            # The follower's xDS stream stayed up throughout and follows the cluster.
            await address_names(clients[follower.name], f"Kubernetes//Pod/{other}/web-2", 10)
        finally:
            for channel in channels:
                await channel.close()
