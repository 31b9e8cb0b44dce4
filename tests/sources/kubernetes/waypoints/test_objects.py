"""The objects of one waypoint Gateway: names, labels, ownership, the pod's bootstrap."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from xds.model.mesh import MeshConfig, ProxyDefaults
from xds.serving.node import ProxyType, parse_node_id
from xds.sources.kubernetes.waypoints.objects import (
    TOKEN_SDS_ANNOTATION,
    InvalidParameters,
    WaypointSettings,
    deployment,
    desired_objects,
    is_waypoint,
    overlay,
    parameters_ref,
    parse_overlays,
    service,
    service_ports,
)

SETTINGS = WaypointSettings()


def gateway(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": "waypoint",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"istio.io/waypoint-for": "service"},
        },
        "spec": {
            "gatewayClassName": "istio-waypoint",
            "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
        },
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value}
    return base


def test_only_istio_waypoint_gateways_are_ours() -> None:
    assert is_waypoint(gateway())
    assert not is_waypoint(gateway(spec={"gatewayClassName": "istio"}))


def test_every_object_is_owned_labelled_and_named_after_the_gateway() -> None:
    objects = desired_objects(gateway(), SETTINGS)
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Deployment", "Service"]
    for obj in objects:
        meta = obj["metadata"]
        assert (meta["name"], meta["namespace"]) == ("waypoint", "shop")
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "name": "waypoint",
                "uid": "u-1",
            }
        ]
        assert meta["labels"] == {
            "istio.io/waypoint-for": "service",
            "gateway.networking.k8s.io/gateway-name": "waypoint",
            "gateway.networking.k8s.io/gateway-class-name": "istio-waypoint",
            "gateway.istio.io/managed": "istio.io-mesh-controller",
        }


@pytest.mark.parametrize(
    ("annotations", "deployment_name", "account"),
    [
        ({}, "waypoint", "waypoint"),
        ({"gateway.istio.io/name-override": "wp"}, "wp", "waypoint"),
        ({"gateway.istio.io/service-account": "wp-sa"}, "waypoint", "wp-sa"),
    ],
)
def test_istiod_annotations_rename(
    annotations: dict[str, str], deployment_name: str, account: str
) -> None:
    gw = gateway(metadata={"annotations": annotations})
    sa, dep, svc = desired_objects(gw, SETTINGS)
    assert sa["metadata"]["name"] == account
    assert dep["metadata"]["name"] == svc["metadata"]["name"] == deployment_name
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == account
    # Our steering annotations are not copied onto the objects.
    assert not set(annotations) & set(dep["metadata"]["annotations"])


@pytest.mark.parametrize(
    ("listeners", "ports"),
    [
        (
            [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
            [("status-port", 15021, "tcp"), ("mesh", 15008, "hbone")],
        ),
        (
            [
                {"name": "mesh", "port": 15008, "protocol": "HBONE"},
                {"name": "again", "port": 15008, "protocol": "HBONE"},
            ],
            [("status-port", 15021, "tcp"), ("mesh", 15008, "hbone")],
        ),
        (
            [{"name": "Proxy_Protocol.Inbound", "port": 15088, "protocol": "istio.io/PROXY"}],
            [("status-port", 15021, "tcp"), ("proxy-protocol-inbound", 15088, "istio.io/proxy")],
        ),
        (
            [{"name": "status-port", "port": 8080, "protocol": "HTTP"}],
            [("status-port", 15021, "tcp"), ("status-port-8080", 8080, "http")],
        ),
    ],
)
def test_service_ports_follow_the_listeners(
    listeners: list[dict[str, Any]], ports: list[tuple[str, int, str]]
) -> None:
    got = service_ports(gateway(spec={"listeners": listeners}))
    assert [(p["name"], p["port"], p["appProtocol"]) for p in got] == ports


def test_the_service_selects_the_gateways_pods() -> None:
    svc = service(gateway())
    dep = deployment(gateway(), SETTINGS)
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert svc["spec"]["type"] == "ClusterIP"
    typed = service(
        gateway(metadata={"annotations": {"networking.istio.io/service-type": "LoadBalancer"}})
    )
    assert typed["spec"]["type"] == "LoadBalancer"


def test_the_pod_runs_stock_envoy_with_our_bootstrap() -> None:
    dep = deployment(gateway(), SETTINGS)
    pod = dep["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == "docker.io/envoyproxy/envoy:v1.40.0"
    assert container["command"] == ["envoy"]
    config = json.loads(container["args"][container["args"].index("--config-yaml") + 1])
    node = config["node"]
    # The kubelet expands these from the container's env.
    assert node["id"] == "waypoint~$(INSTANCE_IP)~$(POD_NAME).shop~shop.svc.cluster.local"
    env = {e["name"] for e in container["env"]}
    assert {"POD_NAME", "INSTANCE_IP"} <= env
    parsed = parse_node_id(
        node["id"].replace("$(INSTANCE_IP)", "10.0.0.9").replace("$(POD_NAME)", "waypoint-1"),
        node["metadata"],
    )
    assert parsed.type is ProxyType.WAYPOINT and parsed.namespace == "shop"
    assert node["metadata"]["LABELS"]["gateway.networking.k8s.io/gateway-name"] == "waypoint"
    [xds] = [c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "istiod.istio-system.svc", "port_value": 15012}
    tls = xds["transport_socket"]["typed_config"]
    assert tls["sni"] == "istiod.istio-system.svc"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"] == {
        "filename": "/var/run/secrets/istio/root-cert.pem"
    }
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    token, sds = volumes["istio-token"]["projected"]["sources"]
    assert token["serviceAccountToken"] == {
        "audience": "istio-ca",
        "expirationSeconds": 43200,
        "path": "istio-token",
    }
    assert (
        sds["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"]
        == f"metadata.annotations['{TOKEN_SDS_ANNOTATION}']"
    )
    assert (
        "/var/run/secrets/tokens/istio-token"
        in pod["metadata"]["annotations"][TOKEN_SDS_ANNOTATION]
    )
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["port"] == 15021
    assert "replicas" not in dep["spec"]  # an HPA or kubectl scale owns them


@pytest.mark.parametrize(
    ("settings", "annotations", "image"),
    [
        (WaypointSettings(image="registry.local/envoy:1"), {}, "registry.local/envoy:1"),
        (SETTINGS, {"sidecar.istio.io/proxyImage": "mirror/envoy:2"}, "mirror/envoy:2"),
    ],
)
def test_the_image_is_configurable(
    settings: WaypointSettings, annotations: dict[str, str], image: str
) -> None:
    dep = deployment(gateway(metadata={"annotations": annotations}), settings)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_gateway_labels_and_infrastructure_reach_the_pods() -> None:
    gw = gateway(
        metadata={"labels": {"team": "a"}},
        spec={
            "infrastructure": {
                "labels": {"team": "b", "tier": "edge"},
                "annotations": {"note": "x"},
            }
        },
    )
    pod = deployment(gw, SETTINGS)["spec"]["template"]["metadata"]
    assert pod["labels"]["team"] == "b" and pod["labels"]["tier"] == "edge"
    assert pod["annotations"]["note"] == "x"


def test_a_system_namespace_changes_the_xds_address() -> None:
    dep = deployment(gateway(), WaypointSettings(system_namespace="mesh"))
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert '"address":"istiod.mesh.svc"' in args[args.index("--config-yaml") + 1]


def test_the_mesh_configs_proxy_defaults_shape_the_envoy() -> None:
    """meshConfig.defaultConfig as pilot-agent would apply it to the Envoy it starts."""
    mesh = MeshConfig(
        proxy_defaults=ProxyDefaults(
            discovery_address="istiod-canary.mesh.svc:15013",
            concurrency=2,
            drain_duration=timedelta(seconds=20),
        )
    )
    settings = WaypointSettings.from_mesh(mesh, "istio-system", "envoy:1")
    container = deployment(gateway(), settings)["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--concurrency") + 1] == "2"
    assert args[args.index("--drain-time-s") + 1] == "20"
    config = json.loads(args[args.index("--config-yaml") + 1])
    [xds] = [c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {
        "address": "istiod-canary.mesh.svc",
        "port_value": 15013,
    }
    assert xds["transport_socket"]["typed_config"]["sni"] == "istiod-canary.mesh.svc"
    # Unset: Envoy's own defaults (a worker per CPU), istiod on 15012.
    plain = deployment(gateway(), WaypointSettings.from_mesh(MeshConfig(), "istio-system", "e"))
    plain_args = plain["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--concurrency" not in plain_args and "--drain-time-s" not in plain_args


@pytest.mark.parametrize(
    ("base", "patch", "merged"),
    [
        ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),
        ({"a": 1, "b": 2}, {"b": None}, {"a": 1}),
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
        (
            {"c": [{"name": "x", "v": 1}, {"name": "y"}]},
            {"c": [{"name": "x", "w": 2}, {"name": "z"}]},
            {"c": [{"name": "x", "v": 1, "w": 2}, {"name": "y"}, {"name": "z"}]},
        ),
        ({"c": [{"name": "x"}]}, {"c": [{"image": "i"}]}, {"c": [{"image": "i"}]}),
    ],
)
def test_overlay_merges_like_a_strategic_merge_patch(base: Any, patch: Any, merged: Any) -> None:
    assert overlay(base, patch) == merged


def test_parameters_customize_replicas_and_resources_but_not_identity() -> None:
    overlays = parse_overlays(
        {
            "metadata": {"name": "params"},
            "data": {
                "deployment": "spec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n"
                "      - name: istio-proxy\n        resources:\n"
                "          requests: {cpu: 300m}\n",
                "service": "metadata:\n  name: renamed\n  labels:\n"
                "    gateway.istio.io/managed: null\n"
                "spec:\n  type: NodePort\n",
            },
        }
    )
    sa, dep, svc = desired_objects(gateway(), SETTINGS, overlays)
    assert dep["spec"]["replicas"] == 2
    [container] = dep["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "300m", "memory": "128Mi"}
    assert container["image"] == SETTINGS.image  # the rest of the container is ours
    assert svc["spec"]["type"] == "NodePort"
    assert svc["metadata"]["name"] == "waypoint"
    assert svc["metadata"]["labels"]["gateway.istio.io/managed"] == "istio.io-mesh-controller"
    assert sa == desired_objects(gateway(), SETTINGS)[0]


@pytest.mark.parametrize(
    ("ref", "data", "message"),
    [
        ({"group": "", "kind": "Secret", "name": "p"}, None, "unknown infrastructure parameters"),
        ({"group": "", "kind": "ConfigMap", "name": "p"}, {"deployment": "a: [b"}, "not YAML"),
        ({"group": "", "kind": "ConfigMap", "name": "p"}, {"deployment": "- 1"}, "a mapping"),
    ],
)
def test_unusable_parameters_are_named(
    ref: dict[str, str], data: dict[str, str] | None, message: str
) -> None:
    gw = gateway(spec={"infrastructure": {"parametersRef": ref}})
    with pytest.raises(InvalidParameters, match=message):
        parameters_ref(gw)
        parse_overlays({"metadata": {"name": "p"}, "data": data})
