"""Small, demo-like meshes for the waypoint translator tests, built from manifests.

Objects are written as the Kubernetes documents a user would apply and go
through the real parser, so the tests exercise the same defaults the server
sees. ``shop`` has a waypoint bound by namespace label; ``other`` has its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict

from xds.model.mesh import MeshConfig, MeshStore
from xds.model.meta import KubeObject
from xds.model.parse import parse_object
from xds.resources import Update, decode, waypoint_scope
from xds.translate.waypoint import WaypointTranslator

Doc = dict[str, Any]
SHOP = waypoint_scope("shop", "waypoint")
OTHER = waypoint_scope("other", "waypoint")
CREATED = "2026-01-15T09:00:00Z"


def meta(
    namespace: str,
    name: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str = CREATED,
) -> Doc:
    out: Doc = {"name": name, "creationTimestamp": created}
    if namespace:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def namespace(name: str, *, use_waypoint: str | None = "waypoint") -> Doc:
    labels = {"istio.io/dataplane-mode": "ambient"}
    if use_waypoint:
        labels["istio.io/use-waypoint"] = use_waypoint
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta("", name, labels)}


def gateway(
    ns: str,
    name: str = "waypoint",
    *,
    cls: str = "istio-waypoint",
    address: str = "10.96.0.100",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    listeners: Sequence[Doc] | None = None,
) -> Doc:
    if listeners is None:
        listeners = [{"name": "mesh", "port": 15008, "protocol": "HBONE"}]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": meta(ns, name, labels, annotations),
        "spec": {"gatewayClassName": cls, "listeners": list(listeners)},
        "status": {"addresses": [{"type": "IPAddress", "value": address}]},
    }


def service(
    ns: str,
    name: str,
    ip: str,
    ports: Sequence[Doc] | None = None,
    *,
    selector: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Doc:
    if ports is None:
        ports = [{"name": "http", "port": 9080, "targetPort": "http"}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(ns, name, labels),
        "spec": {
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": list(ports),
            "selector": dict(selector or {"app": name}),
        },
    }


def pod(
    ns: str,
    name: str,
    ip: str,
    labels: Mapping[str, str],
    *,
    ready: bool = True,
    captured: bool = True,
    node: str = "node-a",
    container_ports: Sequence[Doc] | None = None,
) -> Doc:
    if container_ports is None:
        container_ports = [{"name": "http", "containerPort": 9080}]
    annotations = {"ambient.istio.io/redirection": "enabled" if captured else "disabled"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(ns, name, labels, annotations),
        "spec": {
            "nodeName": node,
            "serviceAccountName": labels.get("app", "default"),
            "containers": [{"name": "app", "ports": list(container_ports)}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def http_route(
    ns: str,
    name: str,
    parent: str,
    rules: Sequence[Doc],
    *,
    port: int | None = None,
    created: str = CREATED,
) -> Doc:
    parent_ref: Doc = {"group": "", "kind": "Service", "name": parent}
    if port is not None:
        parent_ref["port"] = port
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta(ns, name, created=created),
        "spec": {"parentRefs": [parent_ref], "rules": list(rules)},
    }


def policy(ns: str, name: str, spec: Doc, annotations: Mapping[str, str] | None = None) -> Doc:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(ns, name, annotations=annotations),
        "spec": spec,
    }


def to_waypoint(name: str = "waypoint") -> Doc:
    return {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": name}]}


def to_service(name: str) -> Doc:
    return {"targetRefs": [{"kind": "Service", "group": "", "name": name}]}


def shop() -> list[Doc]:
    """A namespace with a waypoint and four services: HTTP, gRPC, TCP and undeclared."""
    return [
        namespace("shop"),
        gateway("shop"),
        service("shop", "reviews", "10.96.1.10"),
        pod("shop", "reviews-v1", "10.244.1.10", {"app": "reviews", "version": "v1"}),
        pod(
            "shop", "reviews-v2", "10.244.1.11", {"app": "reviews", "version": "v2"}, node="node-b"
        ),
        service("shop", "reviews-v1", "10.96.1.11", selector={"app": "reviews", "version": "v1"}),
        service("shop", "reviews-v2", "10.96.1.12", selector={"app": "reviews", "version": "v2"}),
        service(
            "shop", "ratings", "10.96.1.20", [{"name": "grpc", "port": 7070, "targetPort": 7070}]
        ),
        pod(
            "shop",
            "ratings-1",
            "10.244.1.20",
            {"app": "ratings"},
            container_ports=[{"containerPort": 7070}],
        ),
        service(
            "shop", "db", "10.96.1.30", [{"name": "tcp-postgres", "port": 5432, "targetPort": 5432}]
        ),
        pod(
            "shop",
            "db-1",
            "10.244.1.30",
            {"app": "db"},
            captured=False,
            container_ports=[{"containerPort": 5432}],
        ),
        service("shop", "legacy", "10.96.1.40", [{"port": 8000, "targetPort": 8000}]),
        pod(
            "shop",
            "legacy-1",
            "10.244.1.40",
            {"app": "legacy"},
            container_ports=[{"containerPort": 8000}],
        ),
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": meta(
                "",
                "node-b",
                {"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "eu-1"},
            ),
        },
    ]


def other() -> list[Doc]:
    """A second namespace with its own waypoint and one service."""
    return [
        namespace("other"),
        gateway("other", address="10.96.0.200"),
        service("other", "echo", "10.96.2.10"),
        pod("other", "echo-1", "10.244.2.10", {"app": "echo"}),
    ]


def objects(docs: Iterable[Doc]) -> list[KubeObject]:
    parsed = [parse_object(doc) for doc in docs]
    return [obj for obj in parsed if obj is not None]


def mesh(*docs: Doc, config: MeshConfig | None = None) -> MeshStore:
    store = MeshStore(config)
    store.apply(objects(docs))
    return store


def translate(*docs: Doc, config: MeshConfig | None = None) -> list[Update]:
    return WaypointTranslator().translate(mesh(*docs, config=config), None)


Snapshot = dict[str, dict[str, dict[str, Any]]]


def snapshot(updates: Iterable[Update], scope: str = SHOP) -> Snapshot:
    """``{type_url: {name: resource as JSON}}`` for one scope."""
    out: Snapshot = {}
    for update in updates:
        if update.scope == scope:
            out.setdefault(update.type_url, {}).update(
                {
                    resource.name: MessageToDict(
                        decode(update.type_url, resource.body), preserving_proto_field_name=True
                    )
                    for resource in update.upserts
                }
            )
    return out


def find(value: Any, predicate: Any) -> list[Any]:
    """Every dict nested anywhere in ``value`` for which ``predicate`` holds."""
    found = []
    if isinstance(value, dict):
        if predicate(value):
            found.append(value)
        for item in value.values():
            found += find(item, predicate)
    elif isinstance(value, list):
        for item in value:
            found += find(item, predicate)
    return found
