"""Write type stubs (.pyi) for the Envoy API modules the project imports.

xds-protos ships the Envoy, udpa, xds and validate messages without stubs, so mypy saw
every Envoy type as Any. The stubs are generated, not kept: the descriptors of the
imported modules (and of every file they depend on) are read from the installed
xds-protos, written as one FileDescriptorSet, and protoc's own `--pyi_out` turns them
into stubs -- the same generator that writes xds/proto's. They always match the
installed xds-protos, so they are not committed: `python protos/envoy_stubs.py` writes
them to `.stubs/` (mypy's `mypy_path`), and the quality test runs it before mypy.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from google.protobuf import descriptor, descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
STUBS_DIR = REPO_ROOT / ".stubs"
SOURCES = REPO_ROOT / "xds"
# Top-level packages of xds-protos (and the google API protos it depends on). `xds.core`
# and friends share their top-level name with this project, so mypy cannot see stubs for
# them; they stay Any (pyproject.toml).
GENERATED_TOP_LEVEL = ("envoy", "udpa", "validate", "xds", "google")
_PROJECT_PACKAGES = ("xds.proto",)


def imported_modules(sources: Path = SOURCES) -> set[str]:
    """Every generated (_pb2) module the project's code imports."""
    modules: set[str] = set()
    for path in sources.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module.split(".")[0] not in GENERATED_TOP_LEVEL:
                continue
            if node.module.startswith(_PROJECT_PACKAGES) or node.module == "xds":
                continue
            for alias in node.names:
                for candidate in (f"{node.module}.{alias.name}", node.module):
                    if candidate.endswith("_pb2"):
                        modules.add(candidate)
                        break
    return modules


def _closure(files: list[descriptor.FileDescriptor]) -> list[descriptor_pb2.FileDescriptorProto]:
    """The files and everything they import, dependencies first."""
    ordered: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def visit(file: descriptor.FileDescriptor) -> None:
        if file.name in ordered:
            return
        for dependency in file.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        ordered[file.name] = proto

    for file in files:
        visit(file)
    return list(ordered.values())


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None  # a project module under a shared top-level name (`xds.*`)


def generate(out_dir: Path = STUBS_DIR, sources: Path = SOURCES) -> int:
    """Write the stubs into ``out_dir`` (replaced); return how many were written."""
    from grpc_tools import protoc

    roots = [m.DESCRIPTOR for name in sorted(imported_modules(sources)) if (m := _module(name))]
    files = _closure(roots)
    # google/protobuf's own types have stubs already (types-protobuf).
    wanted = [f.name for f in files if not f.name.startswith("google/protobuf/")]
    with tempfile.TemporaryDirectory() as scratch:
        descriptor_set = Path(scratch) / "envoy.pb"
        descriptor_set.write_bytes(descriptor_pb2.FileDescriptorSet(file=files).SerializeToString())
        generated = Path(scratch) / "out"
        generated.mkdir()
        args = ["protoc", f"--descriptor_set_in={descriptor_set}", f"--pyi_out={generated}"]
        if protoc.main([*args, *wanted]) != 0:
            raise RuntimeError("protoc failed to write the Envoy stubs")
        # Packages need an __init__.pyi, or mypy falls back to the untyped installed
        # package. Not at the top of `xds` and `google`: those names are shared with
        # this project and with types-protobuf.
        for package in {p.parent for p in generated.rglob("*.pyi")}:
            while package != generated:
                if package.parent != generated or package.name not in ("xds", "google"):
                    (package / "__init__.pyi").touch()
                package = package.parent
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(generated, out_dir)
    return len(wanted)


if __name__ == "__main__":
    count = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else STUBS_DIR)
    print(f"wrote {count} stub files to {STUBS_DIR if len(sys.argv) < 2 else sys.argv[1]}")
