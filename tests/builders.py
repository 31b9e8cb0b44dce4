"""Kubernetes objects for tests, built as the manifest dicts a user would apply.

One builder per kind, shared by every test package: unit tests turn the manifests
into model objects through the project's own parser (``parse``, ``model``), write
them as YAML (``yaml_text``), and the kube tests send them to a real API server.
Going through the parser rather than constructing model objects by hand keeps the
tests on the defaults the server applies to real manifests.

A builder writes only the fields it is given (plus what its kind cannot do
without), so a test's manifest shows what the test is about. A module with
defaults of its own (a namespace, an IP) wraps a builder in a thin function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from textwrap import dedent
from typing import Any, TypeVar

import yaml

from xds.model.mesh import MeshConfig, MeshStore
from xds.model.meta import KubeObject
from xds.model.parse import parse_object

Manifest = dict[str, Any]
"""One Kubernetes object as decoded YAML/JSON."""

IPs = str | Sequence[str]
"""A single IP fills the singular field (``podIP``, ``clusterIP``); a sequence fills the
plural one (``podIPs``, ``clusterIPs``) and the singular with its first entry, as the
API server reports them."""

HBONE_LISTENER: Mapping[str, Any] = {"name": "mesh", "port": 15008, "protocol": "HBONE"}
"""The listener every waypoint Gateway declares."""

T = TypeVar("T", bound=KubeObject)


def metadata(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
    generate_name: str = "",
    owners: Sequence[Manifest] = (),
    deleted: str | None = None,
) -> Manifest:
    """``metadata``; ``namespace`` is ``""`` for cluster-scoped kinds."""
    out: Manifest = {"name": name}
    if namespace:
        out["namespace"] = namespace
    if labels:
        out["labels"] = dict(labels)
    if annotations:
        out["annotations"] = dict(annotations)
    if created is not None:
        out["creationTimestamp"] = created
    if generate_name:
        out["generateName"] = generate_name
    if owners:
        out["ownerReferences"] = [dict(owner) for owner in owners]
    if deleted is not None:
        out["deletionTimestamp"] = deleted
    return out


def namespace(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata("", name, labels=labels, annotations=annotations, created=created),
    }


def node(
    name: str,
    *,
    region: str = "",
    zone: str = "",
    subzone: str = "",
    created: str | None = None,
) -> Manifest:
    """A Node: only its topology labels matter to the mesh (workload locality)."""
    topology = {
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "topology.istio.io/subzone": subzone,
    }
    labels = {key: value for key, value in topology.items() if value}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata("", name, labels=labels, created=created),
    }


def service_account(namespace: str, name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(namespace, name)}


def pod(
    namespace: str,
    name: str,
    ip: IPs | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
    generate_name: str = "",
    owners: Sequence[Manifest] = (),
    deleted: str | None = None,
    node: str | None = None,
    service_account: str | None = None,
    host_network: bool = False,
    containers: Sequence[Manifest] | None = None,
    init_containers: Sequence[Manifest] | None = None,
    phase: str | None = "Running",
    ready: bool | None = True,
    host_ip: str | None = None,
) -> Manifest:
    """A Pod, running and ready unless told otherwise; ``ready=None`` leaves out the
    Ready condition, ``phase=None`` the phase (the parser then defaults to Pending)."""
    spec: Manifest = {}
    if node is not None:
        spec["nodeName"] = node
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if host_network:
        spec["hostNetwork"] = True
    if containers is not None:
        spec["containers"] = [dict(container) for container in containers]
    if init_containers is not None:
        spec["initContainers"] = [dict(container) for container in init_containers]
    status: Manifest = {}
    if phase is not None:
        status["phase"] = phase
    if isinstance(ip, str):
        status["podIP"] = ip
    elif ip is not None:
        status["podIP"] = ip[0]
        status["podIPs"] = [{"ip": address} for address in ip]
    if host_ip is not None:
        status["hostIP"] = host_ip
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    out: Manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(
            namespace,
            name,
            labels=labels,
            annotations=annotations,
            created=created,
            generate_name=generate_name,
            owners=owners,
            deleted=deleted,
        ),
    }
    if spec:
        out["spec"] = spec
    if status:
        out["status"] = status
    return out


def service(
    namespace: str,
    name: str,
    ip: IPs | None = None,
    ports: Sequence[Manifest] | None = None,
    *,
    selector: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Manifest:
    """A Service; ``spec`` adds fields no parameter covers (type, trafficDistribution...)."""
    body: Manifest = {}
    if selector is not None:
        body["selector"] = dict(selector)
    if isinstance(ip, str):
        body["clusterIP"] = ip
    elif ip is not None:
        body["clusterIP"] = ip[0]
        body["clusterIPs"] = list(ip)
    if ports is not None:
        body["ports"] = [dict(port) for port in ports]
    body.update(spec or {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            namespace, name, labels=labels, annotations=annotations, created=created
        ),
        "spec": body,
    }


def gateway(
    namespace: str,
    name: str = "waypoint",
    *,
    cls: str = "istio-waypoint",
    addresses: Sequence[Manifest] | None = None,
    listeners: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    created: str | None = None,
    spec: Mapping[str, Any] | None = None,
) -> Manifest:
    """A Gateway, by default a waypoint (its class, the HBONE listener); ``addresses`` are
    its ``status.addresses``: without them it is not ready."""
    if listeners is None:
        listeners = [HBONE_LISTENER]
    out: Manifest = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata(
            namespace, name, labels=labels, annotations=annotations, created=created
        ),
        "spec": {
            "gatewayClassName": cls,
            "listeners": [dict(listener) for listener in listeners],
            **(spec or {}),
        },
    }
    if addresses is not None:
        out["status"] = {"addresses": [dict(address) for address in addresses]}
    return out


def ip_address(value: str) -> Manifest:
    """A Gateway address of type IPAddress."""
    return {"type": "IPAddress", "value": value}


def hostname_address(value: str) -> Manifest:
    """A Gateway address of type Hostname."""
    return {"type": "Hostname", "value": value}


# --- What tests need -------------------------------------------------------------------


def yaml_text(*manifests: Manifest) -> str:
    """The manifests as one multi-document YAML text, as a config directory holds them;
    texts concatenate into a longer one."""
    return "".join("---\n" + yaml.safe_dump(doc, sort_keys=False) for doc in manifests)


def parse(*manifests: Manifest) -> list[KubeObject]:
    """Model objects, through the server's parser. A manifest of a kind the model
    ignores is a mistake here (a misspelt kind would silently drop the object)."""
    parsed = []
    for document in manifests:
        obj = parse_object(document)
        assert obj is not None, document
        parsed.append(obj)
    return parsed


def parse_yaml(text: str) -> list[KubeObject]:
    """``parse`` for a multi-document YAML text (indented as a test writes it)."""
    return parse(*(doc for doc in yaml.safe_load_all(dedent(text)) if doc is not None))


def model(manifest: Manifest, cls: type[T]) -> T:
    """One parsed object, checked to be of ``cls``."""
    [obj] = parse(manifest)
    assert isinstance(obj, cls), obj
    return obj


def mesh_store(*objects: KubeObject, config: MeshConfig | None = None) -> MeshStore:
    """A store holding ``objects``, as the sources would fill it."""
    store = MeshStore(config)
    store.apply(objects)
    return store
