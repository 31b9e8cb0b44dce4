"""Small, demo-like meshes for the waypoint translator tests, built from manifests.

Objects are written as the Kubernetes documents a user would apply and go
through the real parser, so the tests exercise the same defaults the server
sees. ``shop`` has a waypoint bound by namespace label; ``other`` has its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict

from tests import builders
from xds.model.mesh import MeshConfig, MeshStore
from xds.resources import Update, decode, waypoint_scope
from xds.translate.waypoint.translator import WaypointTranslator

Doc = builders.Manifest
SHOP = waypoint_scope("shop", "waypoint")
OTHER = waypoint_scope("other", "waypoint")
CREATED = "2026-01-15T09:00:00Z"
REVIEWS = "inbound-vip|9080|http|reviews.shop.svc.cluster.local"
"""shop's reviews Service on its waypoint: its filter chain, route configuration and cluster."""
ECHO = "outbound|9080||echo.other.svc.cluster.local"
"""other's echo Service as a cluster of shop's waypoint (a cross-namespace backend)."""


def meta(
    namespace: str,
    name: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str = CREATED,
) -> Doc:
    return builders.metadata(
        namespace, name, labels=labels, annotations=annotations, created=created
    )


def namespace(name: str, *, use_waypoint: str | None = "waypoint") -> Doc:
    labels = {"istio.io/dataplane-mode": "ambient"}
    if use_waypoint:
        labels["istio.io/use-waypoint"] = use_waypoint
    return builders.namespace(name, labels=labels, created=CREATED)


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
    return builders.gateway(
        ns,
        name,
        cls=cls,
        addresses=[builders.ip_address(address)],
        listeners=listeners,
        labels=labels,
        annotations=annotations,
        created=CREATED,
    )


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
    return builders.service(
        ns, name, [ip], ports, selector=selector or {"app": name}, labels=labels, created=CREATED
    )


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
    """A pod running its app's service account, with the CNI's capture annotation."""
    if container_ports is None:
        container_ports = [{"name": "http", "containerPort": 9080}]
    return builders.pod(
        ns,
        name,
        [ip],
        labels=labels,
        annotations={"ambient.istio.io/redirection": "enabled" if captured else "disabled"},
        created=CREATED,
        node=node,
        service_account=labels.get("app", "default"),
        containers=[{"name": "app", "ports": list(container_ports)}],
        ready=ready,
    )


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
        builders.node("node-b", region="eu", zone="eu-1", created=CREATED),
    ]


def other() -> list[Doc]:
    """A second namespace with its own waypoint and one service."""
    return [
        namespace("other"),
        gateway("other", address="10.96.0.200"),
        service("other", "echo", "10.96.2.10"),
        pod("other", "echo-1", "10.244.2.10", {"app": "echo"}),
    ]


SANDWICH_LABELS = {"istio.io/dataplane-mode": "ambient"}


def sandwich_mesh(*extra: Doc) -> list[Doc]:
    """shop behind a sandwiched ingress Gateway (class istio) instead of a waypoint."""
    listeners = [
        {"name": "http", "port": 9080, "protocol": "HTTP"},
        {"name": "grpc", "port": 7070, "protocol": "HTTP"},
    ]
    return [
        namespace("shop"),
        gateway("shop", cls="istio", labels=SANDWICH_LABELS, listeners=listeners),
        *shop()[2:],
        *extra,
    ]


def proxy_mesh(*extra: Doc) -> list[Doc]:
    """shop behind a Gateway of its own class bound by the PROXY inbound binding."""
    binding = {"ambient.istio.io/waypoint-inbound-binding": "PROXY"}
    listeners = [{"name": "proxy", "port": 15088, "protocol": "istio.io/PROXY"}]
    return [
        namespace("shop"),
        gateway(
            "shop", cls="byo", labels=SANDWICH_LABELS, annotations=binding, listeners=listeners
        ),
        *shop()[2:],
        *extra,
    ]


def reviews_subsets() -> Doc:
    """A DestinationRule splitting shop's reviews into subsets v1 and v2 by label."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": meta("shop", "reviews"),
        "spec": {
            "host": "reviews",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }


def reference_grant(from_kind: str, to_name: str | None = "echo", namespace: str = "shop") -> Doc:
    """A grant in ``other`` letting ``from_kind`` routes in ``namespace`` use its
    Service ``to_name`` (every Service with ``None``)."""
    to: Doc = {"group": "", "kind": "Service"}
    if to_name is not None:
        to["name"] = to_name
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": meta("other", f"from-{namespace}"),
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": from_kind, "namespace": namespace}
            ],
            "to": [to],
        },
    }


def mesh(*docs: Doc, config: MeshConfig | None = None) -> MeshStore:
    return builders.mesh_store(*builders.parse(*docs), config=config)


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
