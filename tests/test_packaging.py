"""The installed package survives ``pip install --force-reinstall xds-protos``.

Both distributions own ``site-packages/xds/__init__.py`` (xds-protos' is empty). The test
copies the installed ``xds`` package as it is in this environment, empties its
``__init__.py`` as that reinstall would, and runs the command from the copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from xds.version import __version__


def test_xds_version_works_after_xds_protos_takes_back_the_init(tmp_path: Path) -> None:
    installed = Path(sysconfig.get_paths()["purelib"]) / "xds"
    assert (installed / "__main__.py").exists(), "the project must be installed (pip install .)"
    site = tmp_path / "site"
    shutil.copytree(installed, site / "xds", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "xds" / "__init__.py").write_text("")  # what xds-protos' wheel holds
    result = subprocess.run(
        [sys.executable, "-m", "xds", "version"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __version__ != "0+unknown"


def test_the_wheel_holds_the_xds_package_only() -> None:
    """The load generator runs from the checkout (``python -m loadtest``): a top-level
    ``loadtest`` package in site-packages could clash with anyone's."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    records = [p for p in purelib.glob("xds_ambient-*.dist-info/RECORD")]
    assert records, "the project must be installed (pip install .)"
    tops = {line.split("/", 1)[0] for line in records[0].read_text().splitlines()}
    assert "loadtest" not in tops and "xds" in tops
