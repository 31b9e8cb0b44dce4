"""Static checks are part of the suite: ruff (lint and format) and mypy (strict) must be
clean."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_ruff() -> None:
    result = _run("ruff", "check", "xds", "tests", "loadtest")
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_format() -> None:
    result = _run("ruff", "format", "--check", "xds", "tests", "loadtest")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
