"""Issue 3's stream contract, as a stock ztunnel sees it, over the file source."""

from __future__ import annotations

from pathlib import Path

from xds.proto.istio.workload import workload_pb2
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import running_control_plane
from .support import NEW_POD, NEW_UID, drain, ztunnel


async def test_ztunnel_stream_lifecycle(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy) as plane:
        client = ztunnel(plane.ports.xds)
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        initial = await drain(client)
        assert [r.type_url for r in initial] == [ADDRESS, AUTHORIZATION]
        full = plane.store.view("ztunnel")
        assert set(client.held[ADDRESS]) == set(full.resources(ADDRESS))
        assert set(client.held[AUTHORIZATION]) == set(full.resources(AUTHORIZATION))

        # A new pod: exactly one small update, of one Workload.
        (demo_copy / "70-new-pod.yaml").write_text(NEW_POD)
        [update] = await drain(client)
        assert update.type_url == ADDRESS and not update.removed_resources
        [resource] = update.resources
        assert resource.name == NEW_UID
        # "A few hundred bytes": the Workload plus name, version and alias.
        assert resource.ByteSize() < 600 and update.ByteSize() < 700
        workload = workload_pb2.Address.FromString(resource.resource.value).workload
        assert workload.addresses == [bytes([10, 244, 2, 77])]
        assert "bookinfo/ratings.bookinfo.svc.cluster.local" in workload.services

        # A no-op edit: nothing.
        (demo_copy / "70-new-pod.yaml").write_text(NEW_POD + "# a comment\n")
        assert await drain(client) == []

        # The pod deleted: its removal, nothing else.
        (demo_copy / "70-new-pod.yaml").unlink()
        [removal] = await drain(client)
        assert list(removal.removed_resources) == [NEW_UID] and not removal.resources

        # Reconnect after changes made while disconnected: only the difference.
        await client.close()
        (demo_copy / "70-new-pod.yaml").write_text(NEW_POD)
        text = (demo_copy / "22-ratings.yaml").read_text()
        (demo_copy / "22-ratings.yaml").write_text(
            "\n---\n".join(d for d in text.split("\n---\n") if "kind: Pod" not in d)
        )
        await plane.source.reload()
        await drain_pipeline(plane)
        # The same client: like ztunnel, it keeps what it holds across streams.
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        address_resync, authorization_resync = await drain(client)
        assert [r.name for r in address_resync.resources] == [NEW_UID]
        assert [n for n in address_resync.removed_resources if "//Pod/bookinfo/ratings-v1" in n]
        assert not authorization_resync.resources and not authorization_resync.removed_resources
        assert set(client.held[ADDRESS]) == set(plane.store.view("ztunnel").resources(ADDRESS))
        await client.close()


async def drain_pipeline(plane: object) -> None:
    """Wait until the debounced rebuild of the reload above has been published."""
    import asyncio

    from ..helpers import wait_until

    pipeline = plane.pipeline  # type: ignore[attr-defined]
    before = pipeline.rebuilds
    await wait_until(lambda: pipeline.rebuilds > before, within=5)
    await asyncio.sleep(0)


async def test_a_misspelt_group_keeps_the_policy_it_breaks(demo_copy: Path) -> None:
    """A typo in a policy's apiVersion is an error naming it, and the policy keeps being
    served as it was (dropping it could open what it closed)."""
    async with running_control_plane(demo_copy) as plane:
        client = ztunnel(plane.ports.xds)
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        await drain(client)
        policies = set(client.held[AUTHORIZATION])
        policies_file = demo_copy / "60-policies.yaml"
        policies_file.write_text(
            policies_file.read_text().replace(
                "apiVersion: security.istio.io/v1", "apiVersion: secuirty.istio.io/v1"
            )
        )
        assert await drain(client) == []
        assert set(client.held[AUTHORIZATION]) == policies
        assert any("did you mean security.istio.io" in str(error) for error in plane.source.errors)  # type: ignore[union-attr]
        await client.close()
