"""The committed xds/proto modules must be exactly what protos/compile.py produces."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _compile_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("proto_compile", REPO / "protos" / "compile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    compile_ = _compile_module()
    generated = compile_.generate(tmp_path)
    committed = {
        p.relative_to(compile_.PACKAGE_DIR): p.read_text()
        for p in compile_.PACKAGE_DIR.rglob("*.py*")
        if "__pycache__" not in p.parts
    }
    stale = sorted(
        str(p) for p in generated.keys() | committed.keys() if generated.get(p) != committed.get(p)
    )
    assert not stale, (
        f"xds/proto is out of date for {stale}; "
        "run `python protos/compile.py` and commit the result"
    )


def test_type_urls_match_the_wire_contract() -> None:
    from xds.proto.istio.security import authorization_pb2
    from xds.proto.istio.v1.auth import ca_pb2
    from xds.proto.istio.workload import workload_pb2

    assert workload_pb2.Address.DESCRIPTOR.full_name == "istio.workload.Address"
    assert authorization_pb2.Authorization.DESCRIPTOR.full_name == "istio.security.Authorization"
    service = ca_pb2.DESCRIPTOR.services_by_name["IstioCertificateService"]
    assert service.full_name == "istio.v1.auth.IstioCertificateService"
