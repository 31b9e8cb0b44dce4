"""The load test in Kubernetes mode: the mesh loaded into a real API server, every change
made through the API, ``xds serve --kubernetes`` measured like the file source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..kube.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.kube]


def test_smoke_scenario_through_the_api_server(kube_cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--scenario",
            "smoke",
            "--plaintext",
            "--no-floor",
            "--kubeconfig",
            str(kube_cluster.kubeconfig),
            "--client-procs",
            "2",
            "--report",
            str(path),
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Kubernetes mode" in result.stdout
    metrics = json.loads(path.read_text())["metrics"]
    for name in ("changes_not_converged", "nacks", "stream_errors"):
        assert metrics[name]["value"] == 0, (name, metrics[name])
    # Every kind of change went through the API and reached its proxies.
    assert metrics["churn_changes"]["value"] > 0
    for name in ("single_change_p99", "route_change_p99", "churn_p99"):
        assert 0 < metrics[name]["value"] < 10_000, (name, metrics[name])
    api = kube_cluster.api()
    pods = api.get("/api/v1/namespaces/ns-0/pods")["items"]
    assert pods and all(p["status"].get("podIP") for p in pods)
