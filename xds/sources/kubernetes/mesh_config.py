"""istiod's mesh config from the cluster: the ``mesh`` key of the ``istio`` ConfigMap in
the system namespace, read once at start-up (a change needs a restart, which a
rolling restart of the Deployment gives)."""

from __future__ import annotations

import yaml

from xds.model.errors import ManifestError
from xds.model.mesh import MeshConfig
from xds.model.parse.mesh_config import parse_mesh_config
from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.sources.mesh_config import MeshConfigError

CONFIG_MAP = "istio"
KEY = "mesh"


async def read_mesh_config(
    api: KubeApi, namespace: str, base: MeshConfig
) -> tuple[MeshConfig, tuple[str, ...], bool]:
    """``base`` with what the ConfigMap sets, the fields it ignores, and whether the
    ConfigMap exists (without one istiod's defaults apply, as here)."""
    where = f"configmap {namespace}/{CONFIG_MAP}"
    try:
        config_map = await api.get(f"/api/v1/namespaces/{namespace}/configmaps/{CONFIG_MAP}")
    except ApiError as error:
        if error.not_found:
            return base, (), False
        raise MeshConfigError(f"{where}: {error}") from None
    text = (config_map.get("data") or {}).get(KEY)
    if text is None:
        return base, (), True
    try:
        config, ignored = parse_mesh_config(yaml.safe_load(text), base)
    except yaml.YAMLError as error:
        raise MeshConfigError(f"{where}: data.{KEY}: {error}") from None
    except ManifestError as error:
        raise MeshConfigError(f"{where}: data.{KEY}: {error.field}: {error.message}") from None
    return config, ignored, True
