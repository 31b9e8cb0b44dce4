"""The docs name tests that exist: a threat table cannot point at nothing."""

from __future__ import annotations

import ast
import re

from .conftest import REPO


def test_every_test_named_in_the_security_doc_exists() -> None:
    text = (REPO / "docs" / "security.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) >= 30
    missing = []
    for path, name in named:
        tree = ast.parse((REPO / path).read_text())
        functions = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, missing


def test_every_modelled_kind_has_rows_in_the_features_table() -> None:
    """A kind the control plane reads (or stops reading) shows up in the README's
    "Supported Istio and Gateway API features" table."""
    from xds.model.parse import MODEL_KINDS

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Supported Istio and Gateway API features") :]
    table = table[: table.index("\n## ")]
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    kinds = {cls.kind for cls in MODEL_KINDS}
    assert kinds <= rows, kinds - rows
    # Rows for kinds that are not read name their group: "Sidecar (networking.istio.io)".
    not_read = {tuple(row.rstrip(")").split(" (")) for row in rows if " (" in row}
    modelled = {(cls.kind, cls.api_group) for cls in MODEL_KINDS}
    assert not (not_read & modelled), "a modelled kind is listed as not read"
