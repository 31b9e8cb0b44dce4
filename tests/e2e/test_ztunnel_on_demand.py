"""A ztunnel in on-demand mode (``XDS_ON_DEMAND=true``), over real gRPC and the demo mesh.

The client sends what ztunnel sends in that mode (``src/xds/client.rs``,
``src/state.rs``): an initial Address request that subscribes to ``*`` and
unsubscribes from it (nothing), with ``NODE_NAME`` in the node metadata; then, on
each lookup miss, ``{type_url, resource_names_subscribe: [key]}`` with no nonce and
no node, the key being ``<network>/<ip>``, a workload uid or ``<ns>/<hostname>``; it
waits for a resource named exactly ``key`` or ``key`` in ``removed_resources``.
"""

from __future__ import annotations

from pathlib import Path

from xds.model.core import Pod
from xds.proto.istio.workload import workload_pb2
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import running_control_plane
from .support import NEW_POD, NEW_UID, drain, edit, ztunnel

DETAILS_VIP = "/10.96.10.11"
DETAILS_SERVICE = "bookinfo/details.bookinfo.svc.cluster.local"
DETAILS_POD = "Kubernetes//Pod/bookinfo/details-v1-65cfcf56f9-kmqgz"


def names(responses: list[object]) -> set[str]:
    return {
        r.name
        for response in responses
        for r in response.resources  # type: ignore[attr-defined]
        if response.type_url == ADDRESS
    }  # type: ignore[attr-defined]


def removed(responses: list[object]) -> set[str]:
    return {
        n
        for response in responses
        for n in response.removed_resources  # type: ignore[attr-defined]
        if response.type_url == ADDRESS
    }  # type: ignore[attr-defined]


async def test_an_on_demand_ztunnel_gets_its_node_and_what_it_looks_up(demo_copy: Path) -> None:
    async with running_control_plane(demo_copy) as plane:
        node_a = {
            f"Kubernetes//Pod/{p.meta.namespace}/{p.meta.name}"
            for p in plane.mesh.objects(Pod)
            if p.node_name == "node-a"
        }
        assert node_a
        client = ztunnel(plane.ports.xds)  # NODE_NAME node-a
        await client.connect({ADDRESS: [], AUTHORIZATION: []}, on_demand=[ADDRESS])
        first = await drain(client)
        # Unasked: the workloads of its own node, and nothing else.
        assert names(first) == node_a
        assert any(r.type_url == AUTHORIZATION and r.resources for r in first)

        # A Service VIP looked up: the Service and its workloads, and the key echoed.
        client.subscribe(ADDRESS, [DETAILS_VIP])
        [lookup] = await drain(client)
        assert {r.name for r in lookup.resources} == {DETAILS_SERVICE, DETAILS_POD}
        assert list(lookup.removed_resources) == [DETAILS_VIP]
        for resource in lookup.resources:  # aliases travel with each address
            assert resource.aliases

        # A later change to that Service's pod is pushed.
        details = demo_copy / "21-details.yaml"
        edit(details, "      containerPort: 9080\n", "      containerPort: 9081\n")
        edit(details, "  - ip: 10.244.2.11\n", "  - ip: 10.244.2.11\n  - ip: fd00::2:11\n")
        update = await drain(client)
        assert DETAILS_POD in names(update)

        # An unknown address is answered, as removed.
        client.subscribe(ADDRESS, ["/10.1.2.3"])
        [unknown] = await drain(client)
        assert list(unknown.removed_resources) == ["/10.1.2.3"] and not unknown.resources

        # A pod added to its node later arrives unasked; one on another node does not.
        (demo_copy / "70-new-pod.yaml").write_text(NEW_POD.replace("node-b", "node-a"))
        [pushed] = await drain(client)
        assert [r.name for r in pushed.resources] == [NEW_UID]
        workload = workload_pb2.Address.FromString(pushed.resources[0].resource.value).workload
        assert workload.node == "node-a"
        (demo_copy / "71-elsewhere.yaml").write_text(
            NEW_POD.replace("ratings-v2-5b7c9-xyz12", "ratings-v3-5b7c9-abc34")
            .replace("uid-ratings-v2", "uid-ratings-v3")
            .replace("10.244.2.77", "10.244.2.78")
            .replace("version: v2", "version: v3")
        )
        assert names(await drain(client)) == set()

        # Reconnecting, it names what it holds: nothing is sent again, and the Service it
        # looked up still brings changes of its pods.
        held = set(client.held[ADDRESS])
        await client.close()
        again = ztunnel(plane.ports.xds)
        again.held = client.held
        await again.connect({ADDRESS: [], AUTHORIZATION: []}, on_demand=[ADDRESS])
        resumed = await drain(again)
        assert names(resumed) == set() and removed(resumed) == set()
        assert set(again.held[ADDRESS]) == held
        details.unlink()
        gone = await drain(again)
        assert {DETAILS_POD, DETAILS_SERVICE} <= removed(gone)
        await again.close()


async def test_a_wildcard_ztunnel_is_unchanged(demo_copy: Path) -> None:
    """The default mode still gets every address, whatever its node, and no aliases (it
    never looks anything up; istiod sends none either)."""
    async with running_control_plane(demo_copy) as plane:
        client = ztunnel(plane.ports.xds)
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        responses = await drain(client)
        assert not any(r.aliases for response in responses for r in response.resources)
        assert set(client.held[ADDRESS]) == set(plane.store.view("ztunnel").resources(ADDRESS))
        await client.close()
