"""The server's config directory as the harness writes it, and edits to it.

Layout (each file a YAML stream of manifests, or with ``fmt="json"`` a JSON
``kind: List``; the suffix follows):

* ``00-cluster.yaml``: Namespaces, Nodes, GatewayClass (cluster-scoped objects);
* ``10-<namespace>.yaml``: everything namespaced except pods (Services,
  Gateways, policies, routes);
* ``20-pods-<namespace>-<k>.yaml``: pods, ``pods_per_file`` to a file, so that
  one pod change makes the server re-read a small file, not its namespace
  (a Kubernetes informer delivers one object per event; this is the closest
  a file source gets without making every poll stat thousands of files);
* ``30-added-<namespace>-<k>.yaml``: pods the churn adds.

Every rewrite is atomic (write a hidden temp file, then rename over the
target) so the server never reads half a file. The server skips hidden files,
so the ``.loadtest`` marker and temp files are invisible to it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]
ObjectRef = tuple[str, str, str]
"""(kind, namespace, name); namespace "" for cluster-scoped objects."""

MARKER = ".loadtest"
FORMATS = ("yaml", "json")
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def ref_of(manifest: Manifest) -> ObjectRef:
    meta = manifest["metadata"]
    return manifest["kind"], meta.get("namespace", ""), meta["name"]


class NotOurDirectory(Exception):
    """The directory holds files the harness did not write; it will not touch them."""


class MeshFiles:
    def __init__(self, directory: Path, pods_per_file: int = 25, fmt: str = "yaml") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.directory = directory
        self.pods_per_file = pods_per_file
        self.format = fmt
        self._files: dict[str, dict[ObjectRef, Manifest]] = {}
        self._file_of: dict[ObjectRef, str] = {}
        self._pods_in: dict[str, int] = {}
        self._added_in: dict[str, int] = {}
        self.writes = 0

    def write(self, manifests: Iterable[Manifest]) -> None:
        """Lay the mesh out in the (empty, or earlier harness-written) directory."""
        self._claim()
        for manifest in manifests:
            self._place(manifest, self._initial_file(manifest))
        for name in self._files:
            self._dump(name)

    def get(self, ref: ObjectRef) -> Manifest | None:
        name = self._file_of.get(ref)
        return None if name is None else self._files[name][ref]

    def put(self, manifest: Manifest) -> float:
        """Add or replace one object; returns when the change became visible (monotonic)."""
        ref = ref_of(manifest)
        name = self._file_of.get(ref) or self._added_file(manifest)
        self._place(manifest, name)
        return self._dump(name)

    def delete(self, ref: ObjectRef) -> float:
        name = self._file_of.pop(ref)
        del self._files[name][ref]
        return self._dump(name)

    # -- internals --------------------------------------------------------------------

    def _claim(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        marker = self.directory / MARKER
        existing = [p for p in self.directory.iterdir() if not p.name.startswith(".")]
        if existing and not marker.exists():
            raise NotOurDirectory(
                f"{self.directory} holds files the load test did not write "
                f"({existing[0].name}, ...); give it an empty directory"
            )
        for path in existing:
            if path.is_file() and path.suffix in (".yaml", ".json"):
                path.unlink()
        marker.write_text("written by python -m loadtest; its YAML files are rewritten\n")

    def _initial_file(self, manifest: Manifest) -> str:
        kind, namespace, _ = ref_of(manifest)
        if not namespace:
            return "00-cluster"
        if kind != "Pod":
            return f"10-{namespace}"
        index = self._pods_in.get(namespace, 0)
        self._pods_in[namespace] = index + 1
        return f"20-pods-{namespace}-{index // self.pods_per_file:04d}"

    def _added_file(self, manifest: Manifest) -> str:
        kind, namespace, _ = ref_of(manifest)
        if kind != "Pod":
            return self._initial_file(manifest)
        index = self._added_in.get(namespace, 0)
        self._added_in[namespace] = index + 1
        return f"30-added-{namespace}-{index // self.pods_per_file:04d}"

    def _place(self, manifest: Manifest, name: str) -> None:
        ref = ref_of(manifest)
        self._files.setdefault(name, {})[ref] = manifest
        self._file_of[ref] = name

    def _dump(self, name: str) -> float:
        target = self.directory / f"{name}.{self.format}"
        temporary = self.directory / f".{name}.tmp"
        documents = list(self._files[name].values())
        if self.format == "json":
            text = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        else:
            text = yaml.dump_all(documents, Dumper=_DUMPER, sort_keys=False)
        temporary.write_text(text)
        applied_at = time.monotonic()
        os.replace(temporary, target)
        self.writes += 1
        return applied_at
