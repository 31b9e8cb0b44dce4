"""Mesh-wide invariants on a generated mesh (loadtest.meshgen), small enough for CI.

What ztunnel relies on across resources: every Service a Workload lists, and
every policy it references, is itself sent; names and uids are unique; a
manifest directory written by meshgen loads back to the same translation.
"""

from __future__ import annotations

from pathlib import Path

from loadtest import meshgen
from tests.translate.ztunnel.fixtures import Output
from xds.model import MeshStore
from xds.proto.istio.workload import workload_pb2 as wl
from xds.sources.files import load_directory
from xds.translate.ztunnel import ZtunnelTranslator

SPEC = meshgen.MeshSpec(
    pods=300, services=40, namespaces=6, waypoints=3, nodes=7, authorization_policies=10
)


def _translate(store: MeshStore) -> Output:
    output = Output()
    output.apply(ZtunnelTranslator().translate(store, None))
    return output


def _generated() -> MeshStore:
    store = MeshStore()
    store.apply(meshgen.objects(SPEC))
    return store


def test_references_resolve_within_the_output() -> None:
    output = _translate(_generated())
    workloads = output.workload_names()
    services = output.service_names()
    assert len(workloads) == SPEC.pods + SPEC.waypoints
    assert len(services) == SPEC.services + SPEC.waypoints
    for name in workloads:
        workload = output.workload(name)
        assert workload.uid == name
        assert set(workload.services) <= services
        assert set(workload.authorization_policies) <= set(output.authorizations)
        assert workload.tunnel_protocol == (
            wl.NONE if workload.workload_name == "waypoint" else wl.HBONE
        )
    bound = [output.service(name) for name in services if output.service(name).HasField("waypoint")]
    # Waypoints serve services only; their own Services never get one.
    assert len(bound) == sum(
        1
        for name in services
        if output.service(name).namespace in {"ns-0", "ns-1", "ns-2"}
        and output.service(name).name != "waypoint"
    )


def test_written_manifests_load_back_to_the_same_translation(tmp_path: Path) -> None:
    meshgen.write(SPEC, tmp_path)
    loaded, errors = load_directory(tmp_path)
    assert errors == []
    store = MeshStore()
    store.apply(loaded)
    from_files, generated = _translate(store), _translate(_generated())
    assert {n: r.version for n, r in from_files.addresses.items()} == {
        n: r.version for n, r in generated.addresses.items()
    }
