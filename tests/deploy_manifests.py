"""Reading ``deploy/`` as ``kubectl apply -k`` does, for the tests that check it.

The kustomizations there use ``resources`` only (plain YAML, no patches or
generators), which is all this reader follows; it refuses anything else, so a
kustomization that grows a feature fails loudly here instead of being misread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import REPO

DEPLOY = REPO / "deploy"
_ALLOWED_KEYS = {"apiVersion", "kind", "resources"}


def rendered(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    """Every object of the kustomization in ``directory``, in kustomize's order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _ALLOWED_KEYS
    if unknown:
        raise AssertionError(
            f"{directory}/kustomization.yaml uses {sorted(unknown)}, which "
            "tests/deploy_manifests.py does not follow"
        )
    objects: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = directory / entry
        if path.is_dir():
            objects += rendered(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [obj] = by_kind(objects, kind)
    return obj
