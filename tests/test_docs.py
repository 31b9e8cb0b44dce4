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
