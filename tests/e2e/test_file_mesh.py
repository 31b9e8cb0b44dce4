"""The whole stack on the file source: manifests on disk -> ADS clients over loopback."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient, SotwClient
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import running_control_plane
from ..helpers import wait_until
from .support import PRODUCTPAGE, ZTUNNEL, drain, edit

PRODUCTPAGE_SVC = "bookinfo/productpage.bookinfo.svc.cluster.local"


async def connect_ztunnel(port: int) -> DeltaClient:
    client = DeltaClient(
        grpc.aio.insecure_channel(f"127.0.0.1:{port}"),
        ZTUNNEL,
        metadata={"NODE_NAME": "node-a", "CLUSTER_ID": "Kubernetes"},
    )
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    return client


async def test_ztunnel_gets_the_demo_mesh_and_live_file_changes(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy) as plane:
        client = await connect_ztunnel(plane.ports.xds)
        addresses, authorizations = await client.next(), await client.next()
        assert addresses.type_url == ADDRESS and authorizations.type_url == AUTHORIZATION
        names = {r.name for r in addresses.resources}
        assert {PRODUCTPAGE, PRODUCTPAGE_SVC} <= names
        assert len(authorizations.resources) >= 1
        await drain(client)

        # An edit that changes one pod's Workload pushes exactly that resource.
        edit(demo_copy / "20-productpage.yaml", "podIP: 10.244.1.10", "podIP: 10.244.1.99")
        edit(demo_copy / "20-productpage.yaml", "- ip: 10.244.1.10", "- ip: 10.244.1.99")
        [push] = await drain(client)
        assert [r.name for r in push.resources] == [PRODUCTPAGE]
        assert not push.removed_resources

        # Deleting the manifest of a pod removes it.
        text = (demo_copy / "20-productpage.yaml").read_text()
        docs = text.split("\n---\n")
        kept = [d for d in docs if "kind: Pod" not in d]
        (demo_copy / "20-productpage.yaml").write_text("\n---\n".join(kept))
        pushes = await drain(client)
        removed = {n for p in pushes for n in p.removed_resources}
        assert PRODUCTPAGE in removed

        # An edit that changes nothing we translate pushes nothing.
        edit(demo_copy / "21-details.yaml", "sessionAffinity: None", "sessionAffinity: None\n  # x")
        assert await drain(client) == []
        await client.close()


async def test_fifty_rapid_edits_are_debounced(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy, debounce_after=0.2, debounce_max=5.0) as plane:
        client = await connect_ztunnel(plane.ports.xds)
        await drain(client)
        path = demo_copy / "22-ratings.yaml"
        original = path.read_text()
        assert "version: v1" in original
        for i in range(50):  # well within two quiet periods
            path.write_text(original.replace("version: v1", f"version: v1-{i}"))
            await asyncio.sleep(0.005)
        pushes = await drain(client, quiet=1.0)
        assert 1 <= len(pushes) <= 3, f"{len(pushes)} pushes for 50 edits"
        assert plane.pipeline.debouncer.batches <= 4
        await client.close()


async def test_broken_manifest_is_reported_and_the_rest_is_served(demo_copy: Path) -> None:
    (demo_copy / "99-broken.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: broken, namespace: bookinfo}\n"
        "spec:\n  ports:\n  - port: http\n"
    )
    async with running_control_plane(demo_copy) as plane:
        [error] = plane.source.errors
        assert error.file.name == "99-broken.yaml" and error.document_index == 0
        assert "spec.ports[0].port" in str(error) and "broken" in str(error)
        client = await connect_ztunnel(plane.ports.xds)
        addresses = await client.next()
        assert PRODUCTPAGE in {r.name for r in addresses.resources}
        await client.close()


async def test_sotw_client_gets_the_same_addresses(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy) as plane:
        client = SotwClient(grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}"), ZTUNNEL)
        await client.connect({ADDRESS: []})
        response = await client.next()
        assert len(response.resources) == len(plane.store.view("ztunnel").resources(ADDRESS))
        await wait_until(
            lambda: all(s.state == "SYNCED" for c in plane.connections for s in c.statuses.values())
        )
        await client.close()


async def test_waypoint_without_gateway_label_is_invalid(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy) as plane:
        client = DeltaClient(
            grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}"),
            "waypoint~10.244.1.50~waypoint-abc.bookinfo~bookinfo.svc.cluster.local",
        )
        await client.connect({"type.googleapis.com/envoy.config.cluster.v3.Cluster": []})
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.next()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert re.search("gateway-name", error.value.details() or "")
        await client.close()
