"""Lease leader election against a real API server: one holder, hand-over on release and
on expiry, and a holder that cannot renew stops before anyone else may start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xds.sources.kubernetes.api import ClusterConfig, KubeApi, connect
from xds.sources.kubernetes.leader import LeaderElection, LeaseTiming

from ...helpers import free_port, wait_until
from ...kube.cluster import ADMIN_TOKEN, Cluster, fresh_namespace
from ...kube.objects import namespace

pytestmark = pytest.mark.kube

TIMING = LeaseTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.3)


@asynccontextmanager
async def campaigning(
    api: KubeApi, ns: str, identity: str, timing: LeaseTiming = TIMING
) -> AsyncIterator[tuple[LeaderElection, list[str]]]:
    """An election running in the background; the list records its work starting/ending."""
    log: list[str] = []
    election = LeaderElection(api, ns, identity=identity, timing=timing)

    async def lead() -> None:
        log.append("start")
        try:
            await asyncio.Event().wait()
        finally:
            log.append("stop")

    task = asyncio.create_task(election.run(lead))
    try:
        yield election, log
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def holder(cluster: Cluster, ns: str) -> str:
    lease = cluster.api().get(
        f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/istiod-xds-leader"
    )
    return str(lease["spec"].get("holderIdentity") or "")


async def test_one_leads_and_a_release_hands_over_at_once(kube_cluster: Cluster) -> None:
    ns = fresh_namespace("lease")
    kube_cluster.api().create(namespace(ns))
    api = await connect(ClusterConfig(kube_cluster.kubeconfig))
    try:
        async with AsyncExitStack() as second_stack:
            async with campaigning(api, ns, "one") as (first, first_log):
                await wait_until(lambda: first.is_leader, within=5)
                second, second_log = await second_stack.enter_async_context(
                    campaigning(api, ns, "two")
                )
                await asyncio.sleep(TIMING.lease_duration * 1.5)  # renewals keep it
                assert first.is_leader and not second.is_leader
                assert first_log == ["start"] and second_log == []
                assert holder(kube_cluster, ns) == "one"
            # "one" stopped cleanly and released the Lease: "two" need not wait it out.
            released = time.monotonic()
            assert first_log == ["start", "stop"]
            await wait_until(lambda: second.is_leader, within=5)
            assert time.monotonic() - released < TIMING.lease_duration
            # The work is a task started just after the Lease is taken: it may not
            # have run yet when is_leader turns true.
            await wait_until(lambda: second_log == ["start"], within=1)
            assert holder(kube_cluster, ns) == "two"
    finally:
        await api.close()


async def test_an_expired_lease_is_taken_only_after_a_full_duration(kube_cluster: Cluster) -> None:
    """The record of a dead holder: its renewTime is long past by *its* clock, but the
    duration is measured on ours from the moment we first saw the record."""
    ns = fresh_namespace("stale")
    admin = kube_cluster.api()
    admin.create(namespace(ns))
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    admin.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "istiod-xds-leader", "namespace": ns},
            "spec": {
                "holderIdentity": "dead",
                "leaseDurationSeconds": 2,
                "renewTime": past,
                "acquireTime": past,
                "leaseTransitions": 4,
            },
        }
    )
    api = await connect(ClusterConfig(kube_cluster.kubeconfig))
    try:
        started = time.monotonic()
        async with campaigning(api, ns, "alive") as (election, _):
            await wait_until(lambda: election.is_leader, within=6)
            waited = time.monotonic() - started
        assert waited >= 2.0, waited
        lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/istiod-xds-leader")
        assert lease["spec"]["leaseTransitions"] == 5
    finally:
        await api.close()


async def test_a_leader_that_cannot_renew_stops_writing(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    """Its own API server dies: within the renew deadline it stops its work, before the
    Lease expires for the others."""
    ns = fresh_namespace("cut")
    kube_cluster.api().create(namespace(ns))
    port = kube_cluster.start_apiserver(port=free_port())
    kubeconfig = kube_cluster.write_kubeconfig(
        tmp_path / "second", ADMIN_TOKEN, server=f"https://127.0.0.1:{port}"
    )
    api = await connect(ClusterConfig(kubeconfig))
    try:
        async with campaigning(api, ns, "isolated") as (election, log):
            await wait_until(lambda: log == ["start"], within=5)
            kube_cluster.stop_apiserver(port)
            cut = time.monotonic()
            await wait_until(lambda: not election.is_leader, within=5)
            stopped_after = time.monotonic() - cut
            # Its work is cancelled right after: wait for it to have ended.
            await wait_until(lambda: log == ["start", "stop"], within=2)
            assert stopped_after < TIMING.lease_duration, stopped_after
    finally:
        await api.close()


def test_timings_must_nest() -> None:
    with pytest.raises(ValueError):
        LeaseTiming(lease_duration=10, renew_deadline=10, retry_period=1)
    assert LeaseTiming.scaled(30).renew_deadline == 15
