"""Kubernetes objects as tests create them through the real API server.

The kinds come from ``tests.builders``; these wrappers hold what the kube tests
share: ambient namespaces, one zone, a "web" pod behind an "http" Service port.
"""

from __future__ import annotations

from typing import Any

from .. import builders
from .cluster import Api

# Identical for the kube tests and the unit tests: nothing to add.
service_account = builders.service_account


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return builders.namespace(name, labels={"istio.io/dataplane-mode": "ambient", **labels})


def node(name: str, zone: str = "zone-a") -> dict[str, Any]:
    return builders.node(name, region="region-1", zone=zone)


def pod(
    ns: str,
    name: str,
    ip: str,
    *,
    node_name: str = "node-a",
    app: str = "web",
    account: str = "default",
) -> dict[str, Any]:
    return builders.pod(
        ns,
        name,
        [ip],
        labels={"app": app},
        node=node_name,
        service_account=account,
        containers=[
            {"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}
        ],
        host_ip="172.18.0.2",
    )


def service(
    ns: str, name: str, cluster_ip: str, *, app: str = "web", port: int = 80
) -> dict[str, Any]:
    return builders.service(
        ns,
        name,
        cluster_ip,
        [{"name": "http", "port": port, "targetPort": 8080}],
        selector={"app": app},
    )


def authorization_policy(ns: str, name: str, action: str = "DENY") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"action": action, "rules": [{"from": [{"source": {"namespaces": ["blocked"]}}]}]},
    }


def waypoint(ns: str, address: str, name: str = "waypoint") -> dict[str, Any]:
    """An istio-waypoint Gateway with the address its Service would have."""
    return builders.gateway(ns, name, addresses=[builders.ip_address(address)])


WAYPOINT_CLASS: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "istio-waypoint"},
    "spec": {"controllerName": "istio.io/mesh-controller"},
}


def workload_entry(ns: str, name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"address": address, "serviceAccount": "vm"},
    }


def pod_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods/{name}"


def apply_all(api: Api, *objects: dict[str, Any]) -> None:
    for obj in objects:
        api.apply(obj)
