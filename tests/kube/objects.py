"""Kubernetes objects as tests create them through the real API server."""

from __future__ import annotations

from typing import Any

from .cluster import Api


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"istio.io/dataplane-mode": "ambient", **labels}},
    }


def node(name: str, zone: str = "zone-a") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "topology.kubernetes.io/region": "region-1",
                "topology.kubernetes.io/zone": zone,
            },
        },
    }


def service_account(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns},
    }


def pod(
    ns: str,
    name: str,
    ip: str,
    *,
    node_name: str = "node-a",
    app: str = "web",
    account: str = "default",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": node_name,
            "serviceAccountName": account,
            "containers": [
                {
                    "name": "web",
                    "image": "web:1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "172.18.0.2",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def service(
    ns: str, name: str, cluster_ip: str, *, app: str = "web", port: int = 80
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"app": app},
            "clusterIP": cluster_ip,
            "ports": [{"name": "http", "port": port, "targetPort": 8080}],
        },
    }


def authorization_policy(ns: str, name: str, action: str = "DENY") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"action": action, "rules": [{"from": [{"source": {"namespaces": ["blocked"]}}]}]},
    }


def waypoint(ns: str, address: str, name: str = "waypoint") -> dict[str, Any]:
    """An istio-waypoint Gateway with the address its Service would have."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
        "status": {"addresses": [{"type": "IPAddress", "value": address}]},
    }


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
