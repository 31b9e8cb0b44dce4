"""Compile protos/ into the importable package xds/proto.

Run `python protos/compile.py` after editing a .proto file and commit the
result; tests/proto/test_generated_up_to_date.py fails when the committed code
differs from what this script produces.

protoc names imports after the .proto path ("from istio.workload import ...");
the generated code lives under xds.proto, so those imports are rewritten. The
.proto packages (and therefore type URLs) are unaffected by where the Python
modules live.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent
PACKAGE_DIR = REPO_ROOT / "xds" / "proto"
PACKAGE = "xds.proto"
OWN_TOP_LEVEL = ("istio",)

_IMPORT = re.compile(r"^from (" + "|".join(OWN_TOP_LEVEL) + r")(\.[\w.]*)? import ", re.M)


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> dict[Path, str]:
    """Run protoc into a scratch directory; return {relative path: source}."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *[str(p) for p in proto_files()],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        result: dict[Path, str] = {}
        for path in sorted(Path(scratch).rglob("*.py*")):
            rel = path.relative_to(scratch)
            text = _IMPORT.sub(
                lambda m: f"from {PACKAGE}.{m.group(1)}{m.group(2) or ''} import ", path.read_text()
            )
            result[rel] = text
        for package in {rel.parent for rel in result}:
            while package != Path("."):
                result.setdefault(package / "__init__.py", "")
                package = package.parent
    result[Path("__init__.py")] = (
        '"""Generated from protos/ by protos/compile.py; do not edit."""\n'
    )
    return result


def write(out_dir: Path = PACKAGE_DIR) -> None:
    for rel, text in generate(out_dir).items():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR)
