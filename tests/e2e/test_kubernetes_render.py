"""Same objects, same bytes: the Kubernetes source and the file source agree.

The demo mesh and the waypoint translator's fixture mesh are applied to the real
API server; everything the cluster then holds is dumped, as the server returns
it, into a manifest directory. ``render`` from the cluster and from that
directory must give byte-identical resources for ztunnels and every waypoint.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from xds.model.mesh import MeshConfig
from xds.plane.render import render
from xds.sources.demo import demo_directory

from ..kube.cluster import ApiError, Cluster
from ..translate.waypoint import fixtures as waypoint_fixtures
from .kube_plane import kubernetes_options

pytestmark = pytest.mark.kube

# Every collection the model reads, as the test's own list of paths (not the discovery
# code under test).
COLLECTIONS = (
    "/api/v1/namespaces",
    "/api/v1/nodes",
    "/api/v1/pods",
    "/api/v1/services",
    "/api/v1/serviceaccounts",
    "/apis/discovery.k8s.io/v1/endpointslices",
    *(
        f"/apis/gateway.networking.k8s.io/v1/{plural}"
        for plural in (
            "gatewayclasses",
            "gateways",
            "httproutes",
            "grpcroutes",
            "tcproutes",
            "tlsroutes",
        )
    ),
    "/apis/security.istio.io/v1/authorizationpolicies",
    "/apis/security.istio.io/v1/peerauthentications",
    *(
        f"/apis/networking.istio.io/v1/{plural}"
        for plural in ("serviceentries", "workloadentries", "virtualservices", "destinationrules")
    ),
)
ZTUNNEL = "ztunnel~10.244.1.2~ztunnel-p8rzs.istio-system~istio-system.svc.cluster.local"
WAYPOINTS = [("bookinfo", "waypoint"), ("shop", "waypoint"), ("other", "waypoint")]


def for_api_server(document: dict[str, Any]) -> dict[str, Any]:
    """A manifest as a user would apply it: server-owned metadata dropped, and what the
    API server requires of a pod (an image) filled in."""
    doc = copy.deepcopy(document)
    for key in ("uid", "creationTimestamp", "resourceVersion"):
        doc.get("metadata", {}).pop(key, None)
    if doc.get("kind") == "Pod":
        for container in doc["spec"]["containers"]:
            container.setdefault("image", "example/app:1")
    else:  # Gateway API status conditions need the full metav1.Condition
        status = doc.get("status") or {}
        for condition in [
            *status.get("conditions", ()),
            *(
                c
                for listener in status.get("listeners", ())
                for c in listener.get("conditions", ())
            ),
        ]:
            condition.setdefault("lastTransitionTime", "2026-01-15T09:00:00Z")
            condition.setdefault("message", "")
    return doc


def demo_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(demo_directory().glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def dump(cluster: Cluster, directory: Path) -> None:
    """Everything the cluster holds of the modelled kinds, as Lists of manifests."""
    api = cluster.api()
    directory.mkdir()
    for index, path in enumerate(COLLECTIONS):
        listed = api.get(path)
        group_version = path.split("/apis/")[-1].rsplit("/", 1)[0] if "/apis/" in path else "v1"
        kind = listed["kind"].removesuffix("List")
        for item in listed["items"]:
            item.setdefault("apiVersion", group_version)
            item.setdefault("kind", kind)
        (directory / f"{index:02d}.yaml").write_text(
            yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": listed["items"]})
        )


def test_cluster_and_files_render_the_same_bytes(kube_cluster: Cluster, tmp_path: Path) -> None:
    api = kube_cluster.api()
    documents = demo_documents() + waypoint_fixtures.shop() + waypoint_fixtures.other()
    # Namespaces (and cluster-scoped objects) first, as kubectl would order them.
    documents.sort(key=lambda d: d["kind"] not in ("Namespace", "Node", "GatewayClass"))
    for document in documents:
        try:
            api.apply(for_api_server(document))
        except ApiError as error:
            if error.status != 409:
                what = f"{document['kind']} {document['metadata']['name']}"
                raise AssertionError(f"{what}: {error}") from None
            if document["kind"] not in ("Namespace", "Node", "GatewayClass"):
                raise  # only shared cluster-scoped objects may already exist
    dumped = tmp_path / "dumped"
    dump(kube_cluster, dumped)
    config = MeshConfig()
    options = kubernetes_options(kube_cluster)

    from_cluster = render(None, ZTUNNEL, mesh_config=config, kubernetes=options)
    from_files = render(dumped, ZTUNNEL, mesh_config=config)
    assert from_cluster == from_files
    names = {item["name"] for item in from_cluster["type.googleapis.com/istio.workload.Address"]}
    assert "Kubernetes//Pod/bookinfo/details-v1-65cfcf56f9-kmqgz" in names
    assert "shop/reviews.shop.svc.cluster.local" in names

    for ns, gateway in WAYPOINTS:
        node = f"waypoint~10.244.9.9~{gateway}-5d7f-abcde.{ns}~{ns}.svc.cluster.local"
        from_cluster = render(None, node, mesh_config=config, kubernetes=options)
        assert from_cluster == render(dumped, node, mesh_config=config), f"{ns}/{gateway}"
        assert from_cluster["type.googleapis.com/envoy.config.cluster.v3.Cluster"], ns

    # The bundled demo's own waypoint comes out as it does from the demo's files: the
    # defaults the API server adds are ones the parser already assumes.
    node = "waypoint~10.244.9.9~waypoint-5d7f-abcde.bookinfo~bookinfo.svc.cluster.local"
    assert render(None, node, mesh_config=config, kubernetes=options) == render(
        None, node, mesh_config=config
    )
