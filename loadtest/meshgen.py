"""Synthetic meshes: N pods, M services, W waypoints and some policies, as a real cluster has them.

Used by the benchmarks and the load generator. The mesh looks like what the API
server would return for ordinary Deployments in ambient mode: namespaces
labelled ``istio.io/dataplane-mode=ambient`` (and ``istio.io/use-waypoint`` for
those with a waypoint), pods with ReplicaSet owners, ``pod-template-hash``,
``app``/``version`` labels, node names, ready conditions and unique IPs;
ClusterIP Services selecting them; per-namespace waypoints (Gateway with a
status address, its Service and pod); a mesh-wide STRICT PeerAuthentication;
and selector AuthorizationPolicies.

Output is deterministic for a given ``MeshSpec`` (``seed`` included), either as
manifest dicts, as model objects, or as YAML files::

    .venv/bin/python -m loadtest.meshgen --pods 10000 --services 1000 --out /tmp/mesh
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml

from xds.model import KubeObject, parse_object

Manifest = dict[str, Any]

CREATED = "2026-01-01T00:00:00Z"
ROOT_NAMESPACE = "istio-system"
_POD_NETWORK = int(IPv4Address("10.128.0.0"))
_SERVICE_NETWORK = int(IPv4Address("10.96.0.0"))
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class MeshSpec:
    """The shape of a synthetic mesh. Defaults: the T6 scenario of performance.md."""

    pods: int = 10_000
    services: int = 1_000
    namespaces: int = 40
    waypoints: int = 40
    """Namespaces (the first ones) with a namespace-wide waypoint; at most ``namespaces``."""
    nodes: int = 500
    authorization_policies: int = 200
    """Selector ALLOW policies, one per service, on the first services."""
    strict_mtls: bool = True
    """A mesh-wide STRICT PeerAuthentication in the root namespace."""
    seed: int = 1


def _name_hash(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_HASH_ALPHABET) for _ in range(length))


def _namespace(name: str, waypoint: bool) -> Manifest:
    labels = {"kubernetes.io/metadata.name": name, "istio.io/dataplane-mode": "ambient"}
    if waypoint:
        labels["istio.io/use-waypoint"] = "waypoint"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "creationTimestamp": CREATED, "labels": labels},
    }


def _node(index: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"node-{index}",
            "creationTimestamp": CREATED,
            "labels": {
                "kubernetes.io/hostname": f"node-{index}",
                "topology.kubernetes.io/region": "region-1",
                "topology.kubernetes.io/zone": f"zone-{index % 3}",
            },
        },
    }


def _service(name: str, namespace: str, cluster_ip: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": CREATED,
            "labels": {"app": name},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _pod(
    name: str,
    namespace: str,
    app: str,
    template_hash: str,
    ip: str,
    node: str,
    labels: dict[str, str] | None = None,
    service_account: str | None = None,
) -> Manifest:
    replica_set = f"{app}-{template_hash}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "generateName": f"{replica_set}-",
            "creationTimestamp": CREATED,
            "labels": {
                "app": app,
                "version": "v1",
                "pod-template-hash": template_hash,
                **(labels or {}),
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": replica_set,
                    "uid": f"uid-{replica_set}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account or app,
            "containers": [
                {
                    "name": app,
                    "image": f"example/{app}:v1",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
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


def _waypoint(
    namespace: str, cluster_ip: str, pod_ip: str, node: str, rng: random.Random
) -> list[Manifest]:
    hostname = f"waypoint.{namespace}.svc.cluster.local"
    template_hash = _name_hash(rng, 10)
    managed = {
        "gateway.networking.k8s.io/gateway-name": "waypoint",
        "gateway.istio.io/managed": "istio.io-mesh-controller",
    }
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": "waypoint",
            "namespace": namespace,
            "creationTimestamp": CREATED,
            "labels": {"istio.io/waypoint-for": "service"},
        },
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
        "status": {
            "addresses": [
                {"type": "IPAddress", "value": cluster_ip},
                {"type": "Hostname", "value": hostname},
            ]
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "waypoint",
            "namespace": namespace,
            "creationTimestamp": CREATED,
            "labels": managed,
        },
        "spec": {
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ipFamilies": ["IPv4"],
            "selector": {"gateway.networking.k8s.io/gateway-name": "waypoint"},
            "ports": [
                {"name": "status-port", "port": 15021, "targetPort": 15021},
                {"name": "mesh", "port": 15008, "targetPort": 15008},
            ],
        },
    }
    pod = _pod(
        f"waypoint-{template_hash}-{_name_hash(rng, 5)}",
        namespace,
        "waypoint",
        template_hash,
        pod_ip,
        node,
        labels={**managed, "istio.io/dataplane-mode": "none"},
        service_account="waypoint",
    )
    return [gateway, service, pod]


def _authorization_policy(service: str, namespace: str, client_namespace: str) -> Manifest:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {
            "name": f"{service}-allow",
            "namespace": namespace,
            "creationTimestamp": CREATED,
        },
        "spec": {
            "selector": {"matchLabels": {"app": service}},
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"namespaces": [namespace, client_namespace]}}],
                    "to": [{"operation": {"ports": ["8080"]}}],
                }
            ],
        },
    }


def manifests(spec: MeshSpec) -> Iterator[Manifest]:
    """The mesh as Kubernetes manifest dicts, cluster-scoped objects first."""
    rng = random.Random(spec.seed)
    namespaces = [f"ns-{i}" for i in range(spec.namespaces)]
    yield _namespace(ROOT_NAMESPACE, waypoint=False) | {
        "metadata": {"name": ROOT_NAMESPACE, "creationTimestamp": CREATED}
    }
    for index, namespace in enumerate(namespaces):
        yield _namespace(namespace, waypoint=index < spec.waypoints)
    for index in range(spec.nodes):
        yield _node(index)
    yield {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "istio-waypoint", "creationTimestamp": CREATED},
        "spec": {"controllerName": "istio.io/mesh-controller"},
    }
    if spec.strict_mtls:
        yield {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {
                "name": "default",
                "namespace": ROOT_NAMESPACE,
                "creationTimestamp": CREATED,
            },
            "spec": {"mtls": {"mode": "STRICT"}},
        }

    pod_ip = iter(range(_POD_NETWORK + 1, _POD_NETWORK + 2**22))
    service_ip = iter(range(_SERVICE_NETWORK + 10, _SERVICE_NETWORK + 2**16))
    for index, namespace in enumerate(namespaces[: spec.waypoints]):
        yield from _waypoint(
            namespace,
            str(IPv4Address(next(service_ip))),
            str(IPv4Address(next(pod_ip))),
            f"node-{index % spec.nodes}",
            rng,
        )

    pods_left = spec.pods
    for index in range(spec.services):
        namespace = namespaces[index % len(namespaces)]
        name = f"svc-{index}"
        yield _service(name, namespace, str(IPv4Address(next(service_ip))))
        if index < spec.authorization_policies:
            yield _authorization_policy(name, namespace, namespaces[(index + 1) % len(namespaces)])
        # Spread the pods evenly over the services (the first ones get the remainder).
        replicas = spec.pods // spec.services + (1 if index < spec.pods % spec.services else 0)
        template_hash = _name_hash(rng, 10)
        for _ in range(min(replicas, pods_left)):
            pods_left -= 1
            node = f"node-{rng.randrange(spec.nodes)}"
            yield _pod(
                f"{name}-{template_hash}-{_name_hash(rng, 5)}",
                namespace,
                name,
                template_hash,
                str(IPv4Address(next(pod_ip))),
                node,
            )


def objects(spec: MeshSpec) -> list[KubeObject]:
    """The mesh as model objects, parsed the way a manifest directory would be."""
    result = []
    for document in manifests(spec):
        parsed = parse_object(document)
        assert parsed is not None, document["kind"]
        result.append(parsed)
    return result


def write(spec: MeshSpec, directory: Path) -> list[Path]:
    """Write the mesh as YAML: cluster-scoped objects, then one file per namespace."""
    directory.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[Manifest]] = {}
    for document in manifests(spec):
        namespace = document["metadata"].get("namespace")
        if document["kind"] == "Namespace" or namespace is None:
            file_name = "00-cluster.yaml"
        else:
            file_name = f"10-{namespace}.yaml"
        by_file.setdefault(file_name, []).append(document)
    paths = []
    for file_name, documents in sorted(by_file.items()):
        path = directory / file_name
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = MeshSpec()
    parser.add_argument("--pods", type=int, default=defaults.pods)
    parser.add_argument("--services", type=int, default=defaults.services)
    parser.add_argument("--namespaces", type=int, default=defaults.namespaces)
    parser.add_argument("--waypoints", type=int, default=defaults.waypoints)
    parser.add_argument("--nodes", type=int, default=defaults.nodes)
    parser.add_argument("--policies", type=int, default=defaults.authorization_policies)
    parser.add_argument("--no-strict-mtls", action="store_true")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, required=True, help="directory for the YAML files")
    args = parser.parse_args(argv)
    spec = MeshSpec(
        pods=args.pods,
        services=args.services,
        namespaces=args.namespaces,
        waypoints=min(args.waypoints, args.namespaces),
        nodes=args.nodes,
        authorization_policies=args.policies,
        strict_mtls=not args.no_strict_mtls,
        seed=args.seed,
    )
    paths = write(spec, args.out)
    print(f"wrote {len(paths)} files to {args.out}")


if __name__ == "__main__":
    main()
