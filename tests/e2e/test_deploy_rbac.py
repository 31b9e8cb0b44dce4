"""``deploy/``'s ClusterRole and Role are exactly what the code needs.

The control plane runs as a user bound to those rules and nothing else, and is
driven through every write it makes (CA Secret, Lease, TokenReview, root
ConfigMaps created and restored, waypoint objects applied and deleted, Gateway
and GatewayClass status, the SubjectAccessReview of a credentialName). The API
server's audit log then says which (group, resource, verb) it asked for: every one
must be allowed (none was refused), and every rule must have been used.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest

from xds.sources.kubernetes.source import KubernetesSource

from ..deploy_manifests import by_kind, rendered
from ..helpers import eventually
from ..kube.cluster import DOCUMENTED_TOKEN, DOCUMENTED_USER, Api, Cluster, fresh_namespace
from ..kube.objects import WAYPOINT_CLASS, apply_all, namespace, service_account
from .kube_plane import (
    bearer,
    kube_plane,
    kubernetes_options,
    request_token,
    secret_names,
    tls_channel,
    waypoint_client,
)
from .support import GATEWAYS, bound_route, create_certificate, gateway, get_or_none, owned_paths

pytestmark = pytest.mark.kube

Permission = tuple[str, str, str]  # api group, resource[/subresource], verb


def granted(system: str) -> set[Permission]:
    permissions = set()
    for role in by_kind(rendered(), "ClusterRole") + by_kind(rendered(), "Role"):
        for rule in role["rules"]:
            permissions |= {
                (group, resource, verb)
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
    return permissions


def bind_deploy_rules(api: Api, system: str) -> None:
    """deploy/'s roles, renamed for this test, bound to the audited user."""
    for kind in ("ClusterRole", "Role"):
        for role in by_kind(rendered(), kind):
            role = copy.deepcopy(role)
            name = f"deploy-{system}"
            role["metadata"]["name"] = name
            if kind == "Role":
                role["metadata"]["namespace"] = system
            api.create(role)
            api.create(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": f"{kind}Binding",
                    "metadata": dict(role["metadata"]),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": kind,
                        "name": name,
                    },
                    "subjects": [
                        {
                            "kind": "User",
                            "name": DOCUMENTED_USER,
                            "apiGroup": "rbac.authorization.k8s.io",
                        }
                    ],
                }
            )


def requested(cluster: Cluster) -> tuple[set[Permission], list[str]]:
    """What the audited user asked for, and what it was refused."""
    asked: set[Permission] = set()
    refused: list[str] = []
    for event in cluster.audit_events(DOCUMENTED_USER):
        ref = event.get("objectRef")
        if ref is None:  # discovery: /api, /apis/...
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        permission = (ref.get("apiGroup", ""), resource, event["verb"])
        asked.add(permission)
        code = event.get("responseStatus", {}).get("code")
        if event["verb"] == "patch" and code == 201:
            # A server-side apply that creates the object is authorized for create too.
            asked.add((permission[0], resource, "create"))
        if code == 403:
            refused.append(f"{permission} {ref.get('namespace', '')}/{ref.get('name', '')}")
    return asked, refused


async def test_the_deploy_rules_are_exactly_what_the_code_uses(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    api = kube_cluster.api()
    system = fresh_namespace("rbacsys")
    ns = fresh_namespace("rbacapp")
    apply_all(api, namespace(system), namespace(ns), service_account(ns, "app"))
    api.ensure(WAYPOINT_CLASS)
    # Let the controller have something to write on the class.
    api.merge_patch(
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses/istio-waypoint/status",
        {"status": {"conditions": None}},
    )
    bind_deploy_rules(api, system)
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "deploy-rbac", DOCUMENTED_TOKEN)
    options = kubernetes_options(kube_cluster, kubeconfig, manage_waypoints=True)
    token = request_token(api, ns, "app")
    root_map = f"/api/v1/namespaces/{ns}/configmaps/istio-ca-root-cert"
    async with (
        kube_plane(kube_cluster, system_namespace=system, kubernetes=options) as plane,
        tls_channel(plane) as channel,
    ):
        assert isinstance(plane.source, KubernetesSource)
        assert plane.source.unavailable == {"missing": [], "forbidden": []}
        await create_certificate(channel, bearer(token))  # TokenReview

        await eventually(lambda: asyncio.to_thread(get_or_none, api, root_map), within=10)
        api.merge_patch(root_map, {"data": {"root-cert.pem": "edited"}})

        def restored() -> bool:
            return bool(api.get(root_map)["data"]["root-cert.pem"] != "edited")

        await eventually(lambda: asyncio.to_thread(restored), within=10)

        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "waypoint-params", "namespace": ns},
                "data": {"deployment": "spec: {replicas: 2}"},
            }
        )
        api.create(
            gateway(
                ns,
                spec={
                    "infrastructure": {
                        "parametersRef": {
                            "group": "",
                            "kind": "ConfigMap",
                            "name": "waypoint-params",
                        }
                    }
                },
            )
        )
        paths = owned_paths(ns, "waypoint")
        for kind in ("HTTPRoute", "GRPCRoute"):
            api.create(bound_route(kind, ns, f"{kind.lower()}-1", parent="waypoint", backend="app"))

        def routes_have_status() -> bool:
            return all(
                api.get(
                    f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/{plural}/{plural[:-1]}-1"
                )
                .get("status", {})
                .get("parents")
                for plural in ("httproutes", "grpcroutes")
            )

        await eventually(lambda: asyncio.to_thread(routes_have_status), within=15)

        def programmed() -> bool:
            current = api.get(f"{GATEWAYS.format(ns=ns)}/waypoint")
            return any(
                c["type"] == "Programmed" and c["status"] == "True"
                for c in current.get("status", {}).get("conditions", ())
            )

        await eventually(lambda: asyncio.to_thread(programmed), within=15)
        # A waypoint asking for a credentialName Secret: watched Secrets, and a
        # SubjectAccessReview for its private key (refused: no RBAC for it).
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "partner", "namespace": ns},
                "stringData": {"tls.crt": "chain", "tls.key": "key", "ca.crt": "bundle"},
            }
        )
        waypoint_token = request_token(api, ns, "waypoint")
        wanted = ["kubernetes://partner", "kubernetes://partner-cacert"]

        async def served() -> bool:
            client = waypoint_client(channel, ns, "waypoint", waypoint_token)
            try:
                return await secret_names(client, wanted) == {"kubernetes://partner-cacert"}
            finally:
                await client.close()

        await eventually(served, within=10)
        api.delete(f"{GATEWAYS.format(ns=ns)}/waypoint")

        async def gone() -> bool:
            return not any([await asyncio.to_thread(get_or_none, api, p) for p in paths.values()])

        await eventually(gone, within=15)
        # The Lease has been renewed (a 3 s lease renews every 0.5 s).
        await asyncio.sleep(1.0)

    asked, refused = requested(kube_cluster)
    assert not refused, refused
    rules = granted(system)
    assert asked <= rules, sorted(asked - rules)
    assert rules <= asked, f"rules the code never used: {sorted(rules - asked)}"
