"""The load test's smoke preset end to end: real server, real floor, real client processes.

Runs ``python -m loadtest --scenario smoke`` (two dozen ztunnels and two
waypoints over TLS, single changes, a route edit, churn, a CSR storm) and
checks the JSON report: its exact shape, that it names this commit, and that
every change reached every proxy it had to reach, ACKed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO, scan_output

pytestmark = pytest.mark.slow

# Figures the smoke run must produce (it exercises every phase).
EXPECTED = {
    "connect_all_synced",
    "floor_connect_all_synced",
    "server_startup",
    "server_rss_per_proxy",
    "single_change_p99",
    "floor_single_change_p99",
    "single_change_floor_ratio",
    "server_cpu_per_change",
    "server_cpu_per_change_per_1k_streams",
    "floor_cpu_per_change_per_1k_streams",
    "server_idle_cores",
    "floor_fanout_p99",
    "route_change_p99",
    "churn_p99",
    "floor_churn_p99",
    "churn_floor_ratio",
    "csr_rate",
    "csr_open_p99",
    "changes_not_converged",
    "nacks",
    "stream_errors",
    "config.ztunnels",
    "config.poll_interval",
    "config.server_workers",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("smoke")
    path = work / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--scenario",
            "smoke",
            "--client-procs",
            "2",
            "--workdir",
            str(work),
            "--report",
            str(path),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    scan_output((work / "server.log").read_text(errors="replace"))  # tokens, CSRs, TLS
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_report_has_exactly_the_documented_shape(report: dict[str, object]) -> None:
    assert set(report) == {"scenario", "commit", "metrics"}
    assert report["scenario"] == "smoke"
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert report["commit"] == head
    metrics = report["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) >= EXPECTED, sorted(EXPECTED - set(metrics))
    for name, metric in metrics.items():
        assert set(metric) == {"value", "unit", "target", "met"}, name
        assert isinstance(metric["value"], int | float) and not isinstance(metric["value"], bool)
        assert isinstance(metric["unit"], str) and metric["unit"], name
        if metric["target"] is None:
            assert metric["met"] is None, name
        else:
            assert isinstance(metric["met"], bool), name


def test_every_change_reached_every_proxy(report: dict[str, object]) -> None:
    metrics = report["metrics"]
    assert isinstance(metrics, dict)
    for name in ("changes_not_converged", "nacks", "stream_errors", "csr_errors"):
        assert metrics[name]["value"] == 0, (name, metrics[name])
        assert metrics[name]["met"] is not False, name
    # Converged changes have latencies; a change no proxy received would have none.
    for name in ("single_change_p99", "route_change_p99", "churn_p99"):
        assert 0 < metrics[name]["value"] < 10_000, (name, metrics[name])


@pytest.fixture(scope="module")
def on_demand_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("smoke-on-demand") / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--scenario",
            "smoke",
            "--on-demand",
            "--plaintext",
            "--client-procs",
            "2",
            "--report",
            str(path),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_on_demand_ztunnels_converge_on_their_node_with_less(
    on_demand_report: dict[str, object], report: dict[str, object]
) -> None:
    metrics = on_demand_report["metrics"]
    assert isinstance(metrics, dict)
    for name in ("changes_not_converged", "nacks", "stream_errors"):
        assert metrics[name]["value"] == 0, (name, metrics[name])
    for name in ("single_change_p99", "churn_p99"):
        assert 0 < metrics[name]["value"] < 10_000, (name, metrics[name])
    wildcard = report["metrics"]
    assert isinstance(wildcard, dict)
    # Its node's pods instead of the whole mesh.
    assert metrics["initial_kb_per_proxy"]["value"] < wildcard["initial_kb_per_proxy"]["value"] / 2
