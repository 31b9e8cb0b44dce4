"""The layers of ``xds/``, held by walking the imports (module level, as Python runs them):
no import cycle, and each layer imports only the layers below it.

    vocabulary (resources, wire, type_urls, metric_types, logs, tasks, version, cpus,
                gc_pause)
    model  <-  sources            (sources -> model; Kubernetes also -> security, translate)
    model  <-  translate          (pure: model -> protos)
    serving                       (streams, CA, HTTP: bytes, not Istio objects)
    security                      (identities, tokens, the CA)
    plane                         (the wiring: may import everything)
    cli, client                   (the edges)

Imports inside functions are not counted (they are how the edges reach the wiring
lazily); imports under ``if TYPE_CHECKING:`` are, since a type checker follows them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "xds"

# Which top-level parts of xds each part may import at module level (itself always).
VOCABULARY = {
    "resources",
    "wire",
    "type_urls",
    "metric_types",
    "logs",
    "tasks",
    "version",
    "cpus",
    "gc_pause",
}
ALLOWED: dict[str, set[str]] = {
    "model": VOCABULARY,
    "translate": VOCABULARY | {"model", "proto"},
    # The Kubernetes source also acts on the cluster: its CA Secret and TokenReview
    # implement security's interfaces, and the waypoint controller deploys
    # translate's bootstrap.
    "sources": VOCABULARY | {"model", "security", "translate"},
    "security": VOCABULARY | {"proto"},
    "serving": VOCABULARY | {"security", "proto"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "proto" in path.relative_to(PACKAGE).parts[:1]:
            continue  # generated
        yield module_name(path), path


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements outside functions and classes: the body, and every arm of module-level
    ifs (``if TYPE_CHECKING:`` included) and try statements."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
        else:
            yield node


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The xds modules ``name`` imports at module level."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in _module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "xds")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "xds":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = dict(sources())
    known = set(modules) | {"xds.proto"}
    return {name: imports(name, path, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other (Tarjan's strongly connected
    components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_there_is_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_each_layer_imports_only_the_layers_below(graph: dict[str, set[str]]) -> None:
    def part(module: str) -> str:
        pieces = module.split(".")
        return pieces[1] if len(pieces) > 1 else ""

    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        if part(module) in ALLOWED
        for target in sorted(targets)
        if part(target) != part(module) and part(target) not in ALLOWED[part(module)]
    ]
    assert wrong == []


def test_the_walk_sees_the_imports_it_should(tmp_path: Path) -> None:
    """The walk itself: module-level and type-checking imports count, lazy ones do not."""
    known = {"xds.a", "xds.b", "xds.c", "xds.pkg", "xds.pkg.d"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from xds import b\n"
        "from xds.pkg import d, helper\n"
        "if TYPE_CHECKING:\n"
        "    from xds import c\n"
        "def f():\n"
        "    import xds.c\n"
    )
    path = tmp_path / "a.py"
    path.write_text(source)
    assert imports("xds.a", path, known) == {"xds.b", "xds.c", "xds.pkg.d", "xds.pkg"}
