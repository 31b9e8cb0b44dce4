"""Static checks are part of the suite: ruff (lint and format) and mypy (strict) must be
clean, with the Envoy API types checked through stubs generated from xds-protos."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINTED = ("xds", "tests", "loadtest", "protos")


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def envoy_stubs() -> Path:
    result = _run("protos/envoy_stubs.py")
    assert result.returncode == 0, result.stdout + result.stderr
    return REPO / ".stubs"


def test_ruff() -> None:
    result = _run("-m", "ruff", "check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_format() -> None:
    result = _run("-m", "ruff", "format", "--check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy(envoy_stubs: Path) -> None:
    result = _run("-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_checks_envoy_types(envoy_stubs: Path, tmp_path: Path) -> None:
    """The stubs are in effect: a misspelt field and a wrong type in an Envoy message
    are errors, not Any."""
    (tmp_path / "probe.py").write_text(
        "from envoy.config.cluster.v3 import cluster_pb2\n"
        "cluster_pb2.Cluster(nam='x')\n"
        "cluster: cluster_pb2.Cluster = cluster_pb2.Cluster(name='x')\n"
        "count: str = cluster.per_connection_buffer_limit_bytes.value\n"
    )
    result = _run(
        "-m",
        "mypy",
        "--strict",
        "--config-file",
        str(REPO / "pyproject.toml"),
        "probe.py",
        cwd=tmp_path,
    )
    assert 'Unexpected keyword argument "nam"' in result.stdout, result.stdout
    assert 'expression has type "int", variable has type "str"' in result.stdout, result.stdout
