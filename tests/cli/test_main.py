"""The ``xds`` command as a user runs it: a real process on real ports."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import time
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient, SotwClient
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER

from ..helpers import ZTUNNEL, free_port, http_ready, serve_process, wait_until, xds

WAYPOINT = "waypoint~10.244.1.50~waypoint-5d7f-abcde.bookinfo~bookinfo.svc.cluster.local"
WAYPOINT_METADATA = {
    "LABELS": {"gateway.networking.k8s.io/gateway-name": "waypoint"},
    "NAMESPACE": "bookinfo",
}


def test_version() -> None:
    result = xds("version")
    assert result.returncode == 0 and result.stdout.strip()
    assert xds("--version").stdout == result.stdout


def test_bare_xds_prints_its_usage() -> None:
    result = xds()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: xds") and "serve" in result.stderr


def test_help_shows_the_defaults() -> None:
    text = " ".join(xds("serve", "--help").stdout.split())  # argparse wraps lines
    for flag, default in (
        ("--listen-address", "0.0.0.0"),
        ("--xds-port", "15010"),
        ("--secure-port", "15012"),
        ("--http-port", "15014"),
        ("--debounce-after", "0.1"),
        ("--debounce-max", "10.0"),
    ):
        assert f"(default: {default})" in text.split(flag, 2)[2].split(" --")[0], flag
    assert "(default: None)" not in text and "(default: False)" not in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--xds-port", "70000"], "not a port"),
        (["serve", "--xds-port", "abc"], "argument --xds-port: 'abc' is not a port (0-65535)"),
        (["serve", "--debounce-after", "soon"], "'soon' is not a number of seconds"),
        (["serve", "--workers", "many"], "'many': use 1 to 64 workers"),
        (["serve", "--log-level", "ads:loud"], "unknown log level"),
        (["render"], "--node"),
        (["frobnicate"], "invalid choice"),
        (["serve", "--trust-domain", ""], "is not a trust domain"),
        (["serve", "--trust-domain", "Cluster Local"], "is not a trust domain"),
        (["ca", "init", "--trust-domain", "spiffe://x"], "is not a trust domain"),
        (
            ["serve", "--default-cert-ttl", "48h", "--max-cert-ttl", "24h"],
            "--default-cert-ttl (2 days, 0:00:00) is longer than --max-cert-ttl (1 day, 0:00:00)",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = xds(*args)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("shape", [["--single-process"], ["--workers", "2"]])
def test_a_port_in_use_is_one_line(shape: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = xds(
            "serve",
            "--listen-address",
            "127.0.0.1",
            "--xds-port",
            str(port),
            "--secure-port",
            "0",
            "--http-port",
            "0",
            *shape,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"xds serve: cannot listen on 127.0.0.1:{port}: the port is in use, or not permitted"
    )
    for noise in ("Traceback", "Event loop is closed", "add_port.cc", "__del__"):
        assert noise not in result.stderr


def test_runtime_failure_exits_1_with_one_line(tmp_path: Path) -> None:
    result = xds("serve", "--config", str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "not a directory" in result.stderr and result.stderr.count("\n") == 1


def test_render_ztunnel_is_json_grouped_by_type() -> None:
    result = xds("render", "--node", ZTUNNEL)
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert set(rendered) == {ADDRESS, AUTHORIZATION}
    names = {item["name"] for item in rendered[ADDRESS]}
    assert "bookinfo/productpage.bookinfo.svc.cluster.local" in names
    workload = next(
        item["resource"]["workload"] for item in rendered[ADDRESS] if "workload" in item["resource"]
    )
    assert workload["uid"].startswith("Kubernetes//Pod/")


def test_a_mesh_config_configmap_sets_the_trust_domain_and_a_bad_one_is_named(
    tmp_path: Path,
) -> None:
    configmap = tmp_path / "istio.yaml"
    configmap.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |-\n    trustDomain: example.org\n    enableTracing: true\n"
    )
    result = xds("render", "--node", ZTUNNEL, "--mesh-config", str(configmap))
    assert result.returncode == 0, result.stderr
    assert '"trustDomain": "example.org"' in result.stdout
    assert "enableTracing" in result.stderr  # told, not silently dropped
    # The flag wins over the file.
    result = xds(
        "render", "--node", ZTUNNEL, "--mesh-config", str(configmap), "--trust-domain", "a.b"
    )
    assert "example.org" not in result.stdout and '"trustDomain": "a.b"' in result.stdout
    broken = tmp_path / "mesh.yaml"
    broken.write_text("extensionProviders: [{name: x, envoyExtAuthzGrpc: {port: 1}}]\n")
    result = xds("render", "--node", ZTUNNEL, "--mesh-config", str(broken))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        f"--mesh-config {broken}: extensionProviders[0].envoyExtAuthzGrpc.service: "
        "required field is missing or empty"
    )


def test_render_malformed_node_is_a_runtime_error() -> None:
    result = xds("render", "--node", "ztunnel~nope")
    assert result.returncode == 1 and "node.id" in result.stderr


def test_render_names_each_invalid_manifest_and_fails(tmp_path: Path) -> None:
    from xds.sources.demo import demo_directory

    mesh = tmp_path / "mesh"
    shutil.copytree(demo_directory(), mesh, ignore=shutil.ignore_patterns("*.py"))
    (mesh / "90-broken.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: bookinfo}\n"
        "spec: {ports: [{port: 99999}]}\n---\nnot: [valid\n"
    )
    result = xds("render", "--config", str(mesh), "--node", ZTUNNEL)
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if "invalid manifest:" in line]
    assert len(lines) == 2
    assert "90-broken.yaml: document 0: Service bookinfo/bad: spec.ports[0].port" in lines[0]
    assert "90-broken.yaml: document 1: invalid YAML/JSON" in lines[1]
    assert "nothing rendered" in result.stderr.splitlines()[-1]
    # --keep-going: the same reports, and the rest rendered as the server serves it.
    kept = xds("render", "--config", str(mesh), "--node", ZTUNNEL, "--keep-going")
    assert kept.returncode == 0 and json.loads(kept.stdout)[ADDRESS]
    assert kept.stderr.count("invalid manifest:") == 2


async def serve_demo() -> tuple[asyncio.subprocess.Process, int, int]:
    """``xds serve`` on the demo mesh, plaintext and HTTP ports only: (process, xds, http)."""
    xds_port, http_port = free_port(), free_port()
    process = await serve_process(xds_port, http_port, stderr=asyncio.subprocess.PIPE)
    return process, xds_port, http_port


async def test_serve_on_the_demo_mesh_answers_delta_clients() -> None:
    process, xds_port, http_port = await serve_demo()
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = DeltaClient(channel, ZTUNNEL)
            await client.connect({ADDRESS: [], AUTHORIZATION: []})
            first, second = await client.next(), await client.next()
            assert {first.type_url, second.type_url} == {ADDRESS, AUTHORIZATION}
            assert first.resources
            await client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0


async def test_sigterm_ends_streams_cleanly_and_exits_promptly() -> None:
    """Streams end with the status ztunnel retries at once (no growing backoff)."""
    process, xds_port, http_port = await serve_demo()
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            clients = [
                DeltaClient(channel, ZTUNNEL),
                SotwClient(channel, WAYPOINT, metadata=WAYPOINT_METADATA),
            ]
            await clients[0].connect({ADDRESS: [], AUTHORIZATION: []})
            await clients[1].connect({CLUSTER: []})
            for client in clients:
                await client.next()
            await asyncio.sleep(0.3)  # past the initial pushes: both streams idle
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            for client in clients:
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    while True:
                        await client.next(within=2)
                assert time.monotonic() - start < 1.0
                assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "transport is closing" in (ended.value.details() or "")
                await client.close()
        assert await asyncio.wait_for(process.wait(), 2) == 0
        assert time.monotonic() - start < 2.0
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert "shutting down" in log and "stopped" in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
