"""istiod's mesh config from the cluster: the ``mesh`` key of the ``istio`` ConfigMap in
the system namespace, read once at start-up (a change needs a restart, which a
rolling restart of the Deployment gives)."""

from __future__ import annotations

from xds.model.mesh import MeshConfig
from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.sources.mesh_config import MeshConfigError, parse_mesh_text

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
    config, ignored = parse_mesh_text(text, base, f"{where}: data.{KEY}")
    return config, ignored, True
