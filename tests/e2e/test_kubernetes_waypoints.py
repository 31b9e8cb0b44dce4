"""The waypoint controller against a real API server, and the Deployment it writes run
by a real Envoy: an ``istio-waypoint`` Gateway is all a user creates."""

from __future__ import annotations

import asyncio
import json
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from xds.sources.kubernetes.waypoints.objects import (
    ROOT_DIR,
    TOKEN_DIR,
    TOKEN_FILE,
    TOKEN_SDS_ANNOTATION,
)
from xds.translate.waypoint.bootstrap import TOKEN_SDS_FILE

from ..helpers import eventually, free_port
from ..kube.cluster import Api, Cluster, fresh_namespace
from ..kube.objects import WAYPOINT_CLASS, apply_all, namespace, service
from ..translate.waypoint.live import envoy_from_file
from .kube_plane import kube_plane, kubernetes_options, request_token
from .support import GATEWAYS, bound_route, gateway, get_or_none, owned_paths
from .waypoint_harness import certificate_uris, config_dump, dump_section

pytestmark = pytest.mark.kube


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == kind), {}
    )


def kubelet_bootstrap(
    deployment: dict[str, Any], *, pod_name: str, files: Path, secure_port: int
) -> dict[str, Any]:
    """The ``--config-yaml`` of the Deployment as the kubelet would hand it to Envoy, moved
    to this machine: ``$(VAR)`` expanded, mounts under ``files``, ``istiod`` on loopback,
    and free ports instead of the pod's."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["envoy"]
    text = container["args"][container["args"].index("--config-yaml") + 1]
    env = {"POD_NAME": pod_name, "INSTANCE_IP": "127.0.0.1"}
    for variable, value in env.items():
        text = text.replace(f"$({variable})", value)
    text = text.replace(TOKEN_DIR, str(files / "tokens")).replace(ROOT_DIR, str(files / "root"))
    config: dict[str, Any] = json.loads(text)
    [xds] = [c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {
        "address": "istiod.istio-system.svc",
        "port_value": 15012,
    }
    endpoint["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": secure_port}
    xds["type"] = "STATIC"
    for listener in config["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["port_value"] = free_port()
    return config


def write_pod_files(api: Api, deployment: dict[str, Any], ns: str, files: Path) -> None:
    """What the pod's volumes would hold: the projected token and SDS document, the root."""
    template = deployment["spec"]["template"]
    account = template["spec"]["serviceAccountName"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    [token_source] = [
        s["serviceAccountToken"]
        for s in volumes["istio-token"]["projected"]["sources"]
        if "serviceAccountToken" in s
    ]
    assert token_source["audience"] == "istio-ca"
    (files / "tokens").mkdir(parents=True)
    (files / "tokens" / TOKEN_FILE).write_text(
        request_token(api, ns, account, audiences=(token_source["audience"],))
    )
    sds = template["metadata"]["annotations"][TOKEN_SDS_ANNOTATION]
    (files / "tokens" / TOKEN_SDS_FILE).write_text(sds.replace(TOKEN_DIR, str(files / "tokens")))
    root_map = volumes["istiod-ca-cert"]["configMap"]["name"]
    root = api.get(f"/api/v1/namespaces/{ns}/configmaps/{root_map}")["data"]["root-cert.pem"]
    (files / "root").mkdir()
    (files / "root" / "root-cert.pem").write_text(root)


async def test_a_waypoint_gateway_gets_objects_status_and_a_working_envoy(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("wpc")
    api.ensure(WAYPOINT_CLASS)
    apply_all(api, namespace(ns))
    options = kubernetes_options(kube_cluster, manage_waypoints=True)
    async with kube_plane(kube_cluster, kubernetes=options) as plane:
        created = api.create(gateway(ns))
        uid = created["metadata"]["uid"]
        paths = owned_paths(ns, "waypoint")

        async def objects_exist() -> bool:
            found = [await asyncio.to_thread(get_or_none, api, p) for p in paths.values()]
            return all(found)

        await eventually(objects_exist, within=15)
        owned = {kind: api.get(path) for kind, path in paths.items()}
        for kind, obj in owned.items():
            refs = obj["metadata"]["ownerReferences"]
            assert refs == [
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "name": "waypoint",
                    "uid": uid,
                }
            ], kind
            assert obj["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"] == "waypoint"
        service = owned["Service"]
        assert {p["port"] for p in service["spec"]["ports"]} == {15008, 15021}
        deployment = owned["Deployment"]
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "waypoint"

        def programmed() -> dict[str, Any] | None:
            current = api.get(f"{GATEWAYS.format(ns=ns)}/waypoint")
            return current if condition(current, "Programmed").get("status") == "True" else None

        await eventually(lambda: asyncio.to_thread(programmed), within=15)
        current = programmed()
        assert current is not None
        assert current["status"]["addresses"] == [
            {"type": "IPAddress", "value": service["spec"]["clusterIP"]},
            {"type": "Hostname", "value": f"waypoint.{ns}.svc.cluster.local"},
        ]
        assert condition(current, "Accepted")["reason"] == "Accepted"
        assert condition(current, "Programmed")["message"] == (
            f"Resource programmed, assigned to service(s) waypoint.{ns}.svc.cluster.local:15008"
        )
        [listener] = current["status"]["listeners"]
        assert listener["name"] == "mesh"
        gateway_class = api.get("/apis/gateway.networking.k8s.io/v1/gatewayclasses/istio-waypoint")
        assert condition(gateway_class, "Accepted")["status"] == "True"

        # The Deployment, run as the kubelet would run it, by a real Envoy.
        files = tmp_path / "pod"
        await eventually(
            lambda: asyncio.to_thread(
                get_or_none, api, f"/api/v1/namespaces/{ns}/configmaps/istio-ca-root-cert"
            ),
            within=15,
        )
        write_pod_files(api, deployment, ns, files)
        bootstrap = kubelet_bootstrap(
            deployment, pod_name="waypoint-5d9c7-abcde", files=files, secure_port=plane.ports.secure
        )
        config_file = tmp_path / "waypoint.json"
        config_file.write_text(json.dumps(bootstrap))
        with ExitStack() as stack:
            envoy = await asyncio.to_thread(
                stack.enter_context, envoy_from_file("waypoint", config_file, tmp_path)
            )

            def configured() -> bool:
                dump = config_dump(envoy)
                listeners = dump_section(dump, "Listeners").get("dynamic_listeners", [])
                return bool(listeners) and bool(certificate_uris(envoy))

            await eventually(lambda: asyncio.to_thread(configured), within=20)
            uris = await asyncio.to_thread(certificate_uris, envoy)
            assert f"spiffe://cluster.local/ns/{ns}/sa/waypoint" in uris

        # Deleting the Gateway deletes what it owned (no garbage collector runs here).
        api.delete(f"{GATEWAYS.format(ns=ns)}/waypoint")

        async def objects_gone() -> bool:
            found = [await asyncio.to_thread(get_or_none, api, p) for p in paths.values()]
            return not any(found)

        await eventually(objects_gone, within=15)


async def test_edits_are_rolled_out_and_hand_deleted_objects_come_back(
    kube_cluster: Cluster,
) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("wpe")
    api.ensure(WAYPOINT_CLASS)
    apply_all(api, namespace(ns))
    options = replace(
        kubernetes_options(kube_cluster, manage_waypoints=True),
        waypoint_image="registry.example/envoy:custom",
    )
    async with kube_plane(kube_cluster, kubernetes=options):
        api.create(gateway(ns, "east", annotations={"gateway.istio.io/service-account": "east-sa"}))
        paths = owned_paths(ns, "east")
        paths["ServiceAccount"] = f"/api/v1/namespaces/{ns}/serviceaccounts/east-sa"
        await eventually(
            lambda: asyncio.to_thread(get_or_none, api, paths["Deployment"]), within=15
        )
        deployment = api.get(paths["Deployment"])
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/envoy:custom"
        generation = deployment["metadata"]["generation"]

        # A label on the Gateway reaches the pods: the Deployment rolls.
        api.merge_patch(
            f"{GATEWAYS.format(ns=ns)}/east", {"metadata": {"labels": {"team": "payments"}}}
        )

        def rolled() -> bool:
            current = api.get(paths["Deployment"])
            labels = current["spec"]["template"]["metadata"]["labels"]
            return (
                labels.get("team") == "payments" and current["metadata"]["generation"] > generation
            )

        await eventually(lambda: asyncio.to_thread(rolled), within=15)

        # An object deleted by hand is put back.
        api.request("DELETE", paths["Service"])
        await eventually(lambda: asyncio.to_thread(get_or_none, api, paths["Service"]), within=15)

        # The Deployment is left alone once it is as wanted: no write loop.
        settled = api.get(paths["Deployment"])["metadata"]["resourceVersion"]
        await asyncio.sleep(1.5)
        assert api.get(paths["Deployment"])["metadata"]["resourceVersion"] == settled


async def test_routes_bound_to_a_waypoint_get_parent_status(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("wpr")
    api.ensure(WAYPOINT_CLASS)
    apply_all(
        api,
        namespace(ns, **{"istio.io/use-waypoint": "waypoint"}),
        service(ns, "cart", "10.96.210.10"),
    )
    routes = f"/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes"
    async with kube_plane(
        kube_cluster, kubernetes=kubernetes_options(kube_cluster, manage_waypoints=True)
    ):
        api.create(
            bound_route(
                "HTTPRoute", ns, "cart", parent="cart", parent_kind="Service", backend="cart-v2"
            )
        )

        def parent_conditions() -> dict[str, tuple[str, str]]:
            parents = api.get(f"{routes}/cart").get("status", {}).get("parents") or []
            return {
                c["type"]: (c["status"], c["reason"])
                for p in parents
                if p["controllerName"] == "istio.io/gateway-controller"
                for c in p["conditions"]
            }

        def shows(kind: str, value: tuple[str, str]) -> bool:
            return parent_conditions().get(kind) == value

        await eventually(
            lambda: asyncio.to_thread(shows, "ResolvedRefs", ("False", "BackendNotFound")),
            within=15,
        )
        assert parent_conditions()["Accepted"] == ("True", "Accepted")
        assert parent_conditions()["ResolvedWaypoints"] == ("True", "ResolvedWaypoints")
        # The backend appears: the route's status follows.
        api.apply(service(ns, "cart-v2", "10.96.210.11"))
        await eventually(
            lambda: asyncio.to_thread(shows, "ResolvedRefs", ("True", "ResolvedRefs")), within=15
        )
        # A backend in another namespace: refused until a ReferenceGrant there allows it.
        store = fresh_namespace("wps")
        apply_all(api, namespace(store), service(store, "stock", "10.96.210.12"))
        moved = api.get(f"{routes}/cart")
        moved["spec"]["rules"][0]["backendRefs"] = [
            {"name": "stock", "namespace": store, "port": 80}
        ]
        api.replace(moved)
        await eventually(
            lambda: asyncio.to_thread(shows, "ResolvedRefs", ("False", "RefNotPermitted")),
            within=15,
        )
        api.create(
            {
                "apiVersion": "gateway.networking.k8s.io/v1beta1",
                "kind": "ReferenceGrant",
                "metadata": {"name": "routes", "namespace": store},
                "spec": {
                    "from": [
                        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns}
                    ],
                    "to": [{"group": "", "kind": "Service"}],
                },
            }
        )
        await eventually(
            lambda: asyncio.to_thread(shows, "ResolvedRefs", ("True", "ResolvedRefs")), within=15
        )


async def test_a_parameters_config_map_customizes_the_deployment(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("wpp")
    api.ensure(WAYPOINT_CLASS)
    apply_all(api, namespace(ns))
    params = {
        "infrastructure": {
            "parametersRef": {"group": "", "kind": "ConfigMap", "name": "waypoint-params"}
        }
    }
    paths = owned_paths(ns, "waypoint")
    async with kube_plane(
        kube_cluster, kubernetes=kubernetes_options(kube_cluster, manage_waypoints=True)
    ):
        # The ConfigMap is missing: nothing is deployed, and the status says why.
        api.create(gateway(ns, spec=params))

        def accepted() -> dict[str, Any]:
            return condition(api.get(f"{GATEWAYS.format(ns=ns)}/waypoint"), "Accepted")

        await eventually(
            lambda: asyncio.to_thread(lambda: accepted().get("reason") == "InvalidParameters"),
            within=15,
        )
        assert accepted()["status"] == "False"
        assert "waypoint-params" in accepted()["message"]
        assert get_or_none(api, paths["Deployment"]) is None

        api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "waypoint-params", "namespace": ns},
                "data": {
                    "deployment": "spec:\n  replicas: 3\n  template:\n    spec:\n"
                    "      containers:\n      - name: istio-proxy\n"
                    "        resources: {limits: {memory: 2Gi}}\n"
                },
            }
        )
        # Any change of the Gateway (or the periodic resync) reads the parameters again.
        api.merge_patch(
            f"{GATEWAYS.format(ns=ns)}/waypoint", {"metadata": {"annotations": {"touched": "1"}}}
        )
        await eventually(
            lambda: asyncio.to_thread(get_or_none, api, paths["Deployment"]), within=15
        )
        deployment = api.get(paths["Deployment"])
        assert deployment["spec"]["replicas"] == 3
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["memory"] == "2Gi"
        await eventually(
            lambda: asyncio.to_thread(lambda: accepted().get("reason") == "Accepted"), within=15
        )
