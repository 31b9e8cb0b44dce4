"""Reading istiod's mesh config from a file (``--mesh-config``).

The file is the ``mesh`` YAML of the ``istio`` ConfigMap, or that ConfigMap itself
(``kubectl get configmap istio -n istio-system -o yaml`` works as is).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from xds.model.errors import ManifestError
from xds.model.mesh import MeshConfig
from xds.model.parse.mesh_config import parse_mesh_config


class MeshConfigError(Exception):
    """The mesh config file cannot be used; the message names the file and the field."""


def load_mesh_config(path: Path, base: MeshConfig) -> tuple[MeshConfig, tuple[str, ...]]:
    """The mesh config ``path`` gives over ``base``, and the fields it ignores."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise MeshConfigError(f"{path}: {error}") from None
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        mesh = (document.get("data") or {}).get("mesh")
        if not isinstance(mesh, str):
            raise MeshConfigError(f"{path}: a ConfigMap without a data.mesh document")
        return parse_mesh_text(mesh, base, f"{path}: data.mesh")
    try:
        return parse_mesh_config(document, base)
    except ManifestError as error:
        raise MeshConfigError(f"{path}: {error.field}: {error.message}") from None


def parse_mesh_text(text: str, base: MeshConfig, where: str) -> tuple[MeshConfig, tuple[str, ...]]:
    """The ``mesh`` YAML of an ``istio`` ConfigMap; errors start with ``where``."""
    try:
        return parse_mesh_config(yaml.safe_load(text), base)
    except yaml.YAMLError as error:
        raise MeshConfigError(f"{where}: {error}") from None
    except ManifestError as error:
        raise MeshConfigError(f"{where}: {error.field}: {error.message}") from None
