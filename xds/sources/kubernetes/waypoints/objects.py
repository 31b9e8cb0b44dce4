"""The ServiceAccount, Deployment and Service that run one waypoint: pure functions.

Named, labelled and owned as istiod's ``waypoint.yaml`` template makes them
(``manifests/charts/istio-control/istio-discovery/files/waypoint.yaml``), so
``kubectl``, ``istioctl waypoint`` and users' selectors see what they expect;
but the container is a **stock Envoy** started with our bootstrap instead of
istio-proxy's pilot-agent:

- the bootstrap is the Envoy ``--config-yaml`` argument; the kubelet fills
  in ``$(POD_NAME)`` and ``$(INSTANCE_IP)`` from the downward API, so one pod
  template serves every replica;
- the token (audience ``istio-ca``) comes from a projected volume and is
  re-read by Envoy whenever the kubelet rotates it (the SDS document that
  tells Envoy so is projected beside it from a pod annotation);
- the root that verifies us is the ``istio-ca-root-cert`` ConfigMap, mounted
  where istio-proxy has it;
- the xDS address is the ``istiod`` Service of the control plane's namespace.

Replicas are left out on purpose: an HPA or ``kubectl scale`` owns them, and
the server-side apply of this Deployment must not fight either.

Customization as istiod allows it: ``spec.infrastructure.parametersRef`` names
a ConfigMap in the Gateway's namespace whose keys ``serviceAccount``,
``deployment`` and ``service`` hold YAML overlays merged onto our objects
(``overlay``: maps merge, ``null`` removes, lists of named items such as
containers merge by name, other lists are replaced), e.g.
``deployment: {spec: {replicas: 2, template: {spec: {containers: [{name:
istio-proxy, resources: {...}}]}}}}``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from xds.model.mesh import MeshConfig
from xds.security.authn import TOKEN_AUDIENCE
from xds.sources.kubernetes.root_cert import CONFIG_MAP, DATA_KEY
from xds.translate.binding import HBONE_PORT
from xds.translate.waypoint.bootstrap import (
    GATEWAY_NAME_LABEL,
    MANAGED_LABEL,
    TOKEN_SDS_FILE,
    BootstrapOptions,
    bootstrap,
    token_sds_document,
)

WAYPOINT_CLASS: Final = "istio-waypoint"
CONTROLLER_NAME: Final = "istio.io/mesh-controller"
MANAGED_VALUE: Final = "istio.io-mesh-controller"
CLASS_NAME_LABEL: Final = "gateway.networking.k8s.io/gateway-class-name"
NAME_OVERRIDE: Final = "gateway.istio.io/name-override"
SERVICE_ACCOUNT_OVERRIDE: Final = "gateway.istio.io/service-account"
SERVICE_TYPE: Final = "networking.istio.io/service-type"
PROXY_IMAGE: Final = "sidecar.istio.io/proxyImage"
TOKEN_SDS_ANNOTATION: Final = "xds.istio.io/token-sds"
_TOKEN_SDS_FIELD: Final = f"metadata.annotations['{TOKEN_SDS_ANNOTATION}']"
FIELD_MANAGER: Final = "istio.io/gateway-controller"
DEFAULT_ENVOY_IMAGE: Final = "docker.io/envoyproxy/envoy:v1.40.0"
STATUS_PORT: Final = 15021
PROMETHEUS_PORT: Final = 15090
TOKEN_DIR: Final = "/var/run/secrets/tokens"
TOKEN_FILE: Final = "istio-token"
ROOT_DIR: Final = "/var/run/secrets/istio"
ROOT_FILE: Final = DATA_KEY
ROOT_CONFIG_MAP: Final = CONFIG_MAP
TOKEN_LIFETIME: Final = 43200
PROXY_UID: Final = 1337
# Annotations that steer us, or kubectl's bookkeeping: never copied onto the objects.
_NOT_PROPAGATED: Final = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        NAME_OVERRIDE,
        SERVICE_ACCOUNT_OVERRIDE,
        "gateway.istio.io/controller-version",
    }
)


@dataclass(frozen=True)
class WaypointSettings:
    """What the controller adds to a Gateway to make its objects."""

    system_namespace: str = "istio-system"
    image: str = DEFAULT_ENVOY_IMAGE
    cluster_domain: str = "cluster.local"
    cluster_id: str = "Kubernetes"
    discovery_address: str | None = None
    """meshConfig.defaultConfig.discoveryAddress (``host:port``); default the ``istiod``
    Service of the system namespace on 15012."""
    concurrency: int | None = None
    """meshConfig.defaultConfig.concurrency: Envoy's ``--concurrency`` (unset/0: per CPU)."""
    drain_duration: timedelta | None = None
    """meshConfig.defaultConfig.drainDuration: Envoy's ``--drain-time-s``."""
    resources: Mapping[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        }
    )

    @classmethod
    def from_mesh(cls, mesh: MeshConfig, system_namespace: str, image: str) -> WaypointSettings:
        defaults = mesh.proxy_defaults
        return cls(
            system_namespace=system_namespace,
            image=image,
            cluster_domain=mesh.domain_suffix,
            cluster_id=mesh.cluster_id,
            discovery_address=defaults.discovery_address,
            concurrency=defaults.concurrency,
            drain_duration=defaults.drain_duration,
        )

    @property
    def xds_endpoint(self) -> tuple[str, int]:
        """(host, port) the waypoints' Envoy connects to."""
        if self.discovery_address:
            host, _, port = self.discovery_address.rpartition(":")
            return host.strip("[]"), int(port)
        return f"istiod.{self.system_namespace}.svc", 15012

    def envoy_args(self) -> list[str]:
        """Envoy flags that pilot-agent would derive from the proxy config."""
        args = []
        if self.concurrency:
            args += ["--concurrency", str(self.concurrency)]
        if self.drain_duration is not None:
            args += ["--drain-time-s", str(max(0, int(self.drain_duration.total_seconds())))]
        return args


def is_waypoint(gateway: Mapping[str, Any]) -> bool:
    return (gateway.get("spec") or {}).get("gatewayClassName") == WAYPOINT_CLASS


def _meta(gateway: Mapping[str, Any]) -> Mapping[str, Any]:
    return gateway.get("metadata") or {}


def deployment_name(gateway: Mapping[str, Any]) -> str:
    meta = _meta(gateway)
    return str((meta.get("annotations") or {}).get(NAME_OVERRIDE) or meta["name"])


def service_account_name(gateway: Mapping[str, Any]) -> str:
    meta = _meta(gateway)
    return str((meta.get("annotations") or {}).get(SERVICE_ACCOUNT_OVERRIDE) or meta["name"])


def infrastructure_labels(gateway: Mapping[str, Any]) -> dict[str, str]:
    """The Gateway's labels, then ``spec.infrastructure.labels`` over them."""
    infrastructure = (gateway.get("spec") or {}).get("infrastructure") or {}
    return {**(_meta(gateway).get("labels") or {}), **(infrastructure.get("labels") or {})}


def infrastructure_annotations(gateway: Mapping[str, Any]) -> dict[str, str]:
    infrastructure = (gateway.get("spec") or {}).get("infrastructure") or {}
    merged = {
        **(_meta(gateway).get("annotations") or {}),
        **(infrastructure.get("annotations") or {}),
    }
    return {k: v for k, v in merged.items() if k not in _NOT_PROPAGATED}


def owner_reference(gateway: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta(gateway)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "name": meta["name"],
        "uid": meta["uid"],
    }


def _labels(gateway: Mapping[str, Any]) -> dict[str, str]:
    return {
        **infrastructure_labels(gateway),
        GATEWAY_NAME_LABEL: _meta(gateway)["name"],
        CLASS_NAME_LABEL: WAYPOINT_CLASS,
        MANAGED_LABEL: MANAGED_VALUE,
    }


def _object_meta(gateway: Mapping[str, Any], name: str) -> dict[str, Any]:
    meta = _meta(gateway)
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": _labels(gateway),
        "annotations": infrastructure_annotations(gateway),
        "ownerReferences": [owner_reference(gateway)],
    }


def service_account(gateway: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _object_meta(gateway, service_account_name(gateway)),
    }


def service_ports(gateway: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``status-port`` 15021, then one port per distinct listener port (as istiod)."""
    ports = [{"name": "status-port", "port": STATUS_PORT, "protocol": "TCP", "appProtocol": "tcp"}]
    used_names = {"status-port"}
    used_ports = {STATUS_PORT}
    for index, listener in enumerate((gateway.get("spec") or {}).get("listeners") or ()):
        port = listener.get("port")
        if not isinstance(port, int) or port in used_ports:
            continue
        used_ports.add(port)
        protocol = str(listener.get("protocol") or "TCP").lower()
        name = _port_name(str(listener.get("name") or "")) or f"{protocol}-{index}"
        if name in used_names:
            name = f"{name}-{port}"
        used_names.add(name)
        ports.append({"name": name, "port": port, "protocol": "TCP", "appProtocol": protocol})
    return ports


def _port_name(name: str) -> str:
    """A listener name as a valid Service port name (a DNS label)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return cleaned[:63].rstrip("-")


def service(gateway: Mapping[str, Any]) -> dict[str, Any]:
    annotations = _meta(gateway).get("annotations") or {}
    meta = _object_meta(gateway, deployment_name(gateway))
    meta["annotations"] = {
        "networking.istio.io/traffic-distribution": "PreferClose",
        **meta["annotations"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": str(annotations.get(SERVICE_TYPE) or "ClusterIP"),
            "ports": service_ports(gateway),
            "selector": {GATEWAY_NAME_LABEL: _meta(gateway)["name"]},
        },
    }


def waypoint_bootstrap(gateway: Mapping[str, Any], settings: WaypointSettings) -> dict[str, Any]:
    """The bootstrap in the pod template, with the kubelet's ``$(VAR)`` placeholders."""
    meta = _meta(gateway)
    xds_host, xds_port = settings.xds_endpoint
    return bootstrap(
        BootstrapOptions(
            namespace=meta["namespace"],
            name=meta["name"],
            xds_host=xds_host,
            xds_port=xds_port,
            pod_ip="$(INSTANCE_IP)",
            pod_name="$(POD_NAME)",
            service_account=service_account_name(gateway),
            token_path=f"{TOKEN_DIR}/{TOKEN_FILE}",
            ca_root_path=f"{ROOT_DIR}/{ROOT_FILE}",
            server_name=xds_host,
            admin_port=15000,
            readiness_port=STATUS_PORT,
            prometheus_port=PROMETHEUS_PORT,
            cluster_domain=settings.cluster_domain,
            cluster_id=settings.cluster_id,
            extra_labels={CLASS_NAME_LABEL: WAYPOINT_CLASS},
        )
    )


def deployment(gateway: Mapping[str, Any], settings: WaypointSettings) -> dict[str, Any]:
    meta = _meta(gateway)
    name = deployment_name(gateway)
    annotations = meta.get("annotations") or {}
    image = str(annotations.get(PROXY_IMAGE) or settings.image)
    config = json.dumps(waypoint_bootstrap(gateway, settings), separators=(",", ":"))
    pod_labels = {
        "sidecar.istio.io/inject": "false",
        "istio.io/dataplane-mode": "none",
        "service.istio.io/canonical-name": name,
        "service.istio.io/canonical-revision": "latest",
        **_labels(gateway),
    }
    pod_annotations = {
        **infrastructure_annotations(gateway),
        "prometheus.io/path": "/stats/prometheus",
        "prometheus.io/port": str(PROMETHEUS_PORT),
        "prometheus.io/scrape": "true",
        TOKEN_SDS_ANNOTATION: token_sds_document(f"{TOKEN_DIR}/{TOKEN_FILE}"),
    }
    probe = {
        "httpGet": {"path": "/healthz/ready", "port": STATUS_PORT, "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "successThreshold": 1,
    }
    container = {
        "name": "istio-proxy",
        "image": image,
        "command": ["envoy"],
        # As pilot-agent starts Envoy: access logs are flushed every second.
        "args": [
            "--config-yaml",
            config,
            "--disable-hot-restart",
            "--log-level",
            "warning",
            "--file-flush-interval-msec",
            "1000",
            *settings.envoy_args(),
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("INSTANCE_IP", "status.podIP"),
            _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [
            {"containerPort": STATUS_PORT, "name": "status-port", "protocol": "TCP"},
            {"containerPort": PROMETHEUS_PORT, "name": "http-envoy-prom", "protocol": "TCP"},
            {"containerPort": HBONE_PORT, "name": "hbone", "protocol": "TCP"},
        ],
        "resources": copy.deepcopy(dict(settings.resources)),
        "startupProbe": {
            **probe,
            "failureThreshold": 30,
            "initialDelaySeconds": 1,
            "periodSeconds": 1,
        },
        "readinessProbe": {
            **probe,
            "failureThreshold": 4,
            "initialDelaySeconds": 0,
            "periodSeconds": 15,
        },
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "istio-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "istiod-ca-cert", "mountPath": ROOT_DIR, "readOnly": True},
        ],
    }
    volumes = [
        {
            "name": "istio-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": TOKEN_AUDIENCE,
                            "expirationSeconds": TOKEN_LIFETIME,
                            "path": TOKEN_FILE,
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": TOKEN_SDS_FILE,
                                    "fieldRef": {"fieldPath": _TOKEN_SDS_FIELD},
                                }
                            ]
                        }
                    },
                ]
            },
        },
        {"name": "istiod-ca-cert", "configMap": {"name": ROOT_CONFIG_MAP}},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _object_meta(gateway, name),
        "spec": {
            "selector": {"matchLabels": {GATEWAY_NAME_LABEL: meta["name"]}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": {
                    "serviceAccountName": service_account_name(gateway),
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


OVERLAY_KEYS: Final = {
    "ServiceAccount": "serviceAccount",
    "Deployment": "deployment",
    "Service": "service",
}


class InvalidParameters(ValueError):
    """The Gateway's parametersRef cannot be used (reported as ``InvalidParameters``)."""


def parameters_ref(gateway: Mapping[str, Any]) -> str | None:
    """The name of the Gateway's parameters ConfigMap, if it has one.

    Raises ``InvalidParameters`` for a reference to anything but a ConfigMap."""
    ref = ((gateway.get("spec") or {}).get("infrastructure") or {}).get("parametersRef")
    if not ref:
        return None
    if ref.get("group", "") != "" or ref.get("kind") != "ConfigMap":
        raise InvalidParameters(
            f"unknown infrastructure parameters type {ref.get('group', '')}/{ref.get('kind', '')}"
        )
    return str(ref.get("name") or "")


def parse_overlays(config_map: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The overlays of a parameters ConfigMap, by our kind."""
    import yaml  # only Gateways with parameters need it

    name = (config_map.get("metadata") or {}).get("name")
    data = config_map.get("data") or {}
    overlays: dict[str, dict[str, Any]] = {}
    for kind, key in OVERLAY_KEYS.items():
        if key not in data:
            continue
        try:
            value = yaml.safe_load(data[key])
        except yaml.YAMLError as error:
            raise InvalidParameters(
                f"ConfigMap {name} key {key}: not YAML: {str(error).splitlines()[0]}"
            ) from None
        if value is not None and not isinstance(value, dict):
            raise InvalidParameters(f"ConfigMap {name} key {key}: must be a mapping")
        if value:
            overlays[kind] = value
    return overlays


def overlay(base: Any, patch: Any) -> Any:
    """``patch`` merged onto ``base`` (see the module docstring)."""
    if isinstance(base, Mapping) and isinstance(patch, Mapping):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = overlay(base.get(key), value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged_list = [dict(item) for item in base]
        index = {item["name"]: i for i, item in enumerate(merged_list)}
        for item in patch:
            if item["name"] in index:
                merged_list[index[item["name"]]] = overlay(merged_list[index[item["name"]]], item)
            else:
                merged_list.append(dict(item))
        return merged_list
    return patch


def _named(items: list[Any]) -> bool:
    return all(isinstance(item, Mapping) and "name" in item for item in items)


def desired_objects(
    gateway: Mapping[str, Any],
    settings: WaypointSettings,
    overlays: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Everything one waypoint Gateway owns, in the order to create it, with the
    parameters' ``overlays`` (by kind) merged on; names and ownership cannot be changed."""
    result = []
    for obj in (service_account(gateway), deployment(gateway, settings), service(gateway)):
        patch = (overlays or {}).get(obj["kind"])
        if patch:
            merged = overlay(obj, patch)
            for fixed in ("apiVersion", "kind"):
                merged[fixed] = obj[fixed]
            fixed_meta = {k: obj["metadata"][k] for k in ("name", "namespace", "ownerReferences")}
            # The controller finds its objects by these labels.
            fixed_meta["labels"] = {
                **((merged.get("metadata") or {}).get("labels") or {}),
                **_labels(gateway),
            }
            merged["metadata"] = {**(merged.get("metadata") or {}), **fixed_meta}
            obj = merged
        result.append(obj)
    return result


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
