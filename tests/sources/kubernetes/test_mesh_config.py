"""The istio ConfigMap's mesh config, read from a real API server."""

from __future__ import annotations

import pytest

from xds.model.mesh import MeshConfig
from xds.sources.kubernetes.api import ClusterConfig, connect
from xds.sources.kubernetes.mesh_config import read_mesh_config
from xds.sources.mesh_config import MeshConfigError

from ...kube.cluster import Cluster, fresh_namespace
from ...kube.objects import namespace

pytestmark = pytest.mark.kube


def _config_map(ns: str, mesh: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": ns},
        "data": {"mesh": mesh},
    }


async def test_the_configmap_sets_the_mesh_and_names_what_it_ignores(
    kube_cluster: Cluster,
) -> None:
    admin = kube_cluster.api()
    present, absent, broken = (fresh_namespace(name) for name in ("mesh", "nomesh", "badmesh"))
    for ns in (present, absent, broken):
        admin.create(namespace(ns))
    admin.create(
        _config_map(
            present,
            "trustDomain: example.org\nenableTracing: true\nextensionProviders:\n"
            "- {name: opa, envoyExtAuthzGrpc: {service: opa.authz.svc, port: 9191}}\n",
        )
    )
    admin.create(_config_map(broken, "extensionProviders: [{name: x, envoyExtAuthzGrpc: {}}]"))
    api = await connect(ClusterConfig(kube_cluster.kubeconfig))
    base = MeshConfig(cluster_id="east")
    try:
        config, ignored, found = await read_mesh_config(api, present, base)
        assert found and config.trust_domain == "example.org" and config.cluster_id == "east"
        assert [provider.name for provider in config.extension_providers] == ["opa"]
        assert ignored == ("enableTracing",)
        assert await read_mesh_config(api, absent, base) == (base, (), False)
        with pytest.raises(MeshConfigError) as caught:
            await read_mesh_config(api, broken, base)
        assert str(caught.value) == (
            f"configmap {broken}/istio: data.mesh: "
            "extensionProviders[0].envoyExtAuthzGrpc.service: required field is missing or empty"
        )
    finally:
        await api.close()
