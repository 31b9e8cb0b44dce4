"""The mesh a run serves: ``meshgen``'s synthetic ambient mesh plus HTTPRoutes for waypoints.

``meshgen`` has no routes; waypoint route edits need some, so the first
``routes`` Services in namespaces that use a waypoint get an HTTPRoute
(parentRef: the Service, as GAMMA routes for waypoints are written) sending
all traffic to the Service itself. Route edits then shift weight to a second
backend and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest import meshgen
from loadtest.meshfiles import Manifest

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


@dataclass(frozen=True)
class WaypointPod:
    """A waypoint Deployment's pod as meshgen writes it: what a waypoint proxy claims to be."""

    namespace: str
    gateway: str
    pod_name: str
    ip: str
    labels: dict[str, str]
    service_account: str


def http_route(
    name: str, namespace: str, service: str, backends: list[tuple[str, int]]
) -> Manifest:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": meshgen.CREATED},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": service, "port": 80}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": backend, "port": 80, "weight": weight}
                        for backend, weight in backends
                    ],
                }
            ],
        },
    }


def manifests(spec: meshgen.MeshSpec, routes: int = 0) -> list[Manifest]:
    """The mesh's manifests; ``routes`` HTTPRoutes on Services behind a waypoint."""
    documents = list(meshgen.manifests(spec))
    waypoint_namespaces = {m["metadata"]["namespace"] for m in documents if m["kind"] == "Gateway"}
    services = [
        m
        for m in documents
        if m["kind"] == "Service"
        and m["metadata"]["namespace"] in waypoint_namespaces
        and m["metadata"]["name"] != "waypoint"
    ]
    for service in services[:routes]:
        meta = service["metadata"]
        documents.append(
            http_route(
                f"{meta['name']}-route", meta["namespace"], meta["name"], [(meta["name"], 100)]
            )
        )
    return documents


def waypoint_pods(documents: list[Manifest]) -> list[WaypointPod]:
    """Every waypoint pod in the mesh, in namespace order."""
    found = []
    for document in documents:
        if document["kind"] != "Pod":
            continue
        labels: dict[str, Any] = document["metadata"].get("labels", {})
        gateway = labels.get(GATEWAY_NAME_LABEL)
        if gateway is None:
            continue
        found.append(
            WaypointPod(
                document["metadata"]["namespace"],
                gateway,
                document["metadata"]["name"],
                document["status"]["podIP"],
                {str(k): str(v) for k, v in labels.items()},
                document["spec"].get("serviceAccountName", gateway),
            )
        )
    return found


def node_count(documents: list[Manifest]) -> int:
    return sum(1 for d in documents if d["kind"] == "Node")
