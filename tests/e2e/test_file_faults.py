"""Faults of the config directory, with a real server process: fail closed.

The server runs as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (``setpriv``), so a
``chmod 000`` really makes a directory unreadable to it, as for an unprivileged server.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest

from xds.client import DeltaClient
from xds.type_urls import ADDRESS, AUTHORIZATION

from .. import builders
from ..conftest import REPO
from ..helpers import free_port, http_ready, kill_tree, serve_process, wait_until
from .kube_plane import changes, ztunnel_client

SETPRIV = shutil.which("setpriv")


async def _serve(
    root: Path,
    xds_port: int,
    http_port: int,
    *,
    stderr: int | None = None,
    wrapper: Sequence[str] = (),
) -> asyncio.subprocess.Process:
    """``xds serve --config root`` (plaintext and HTTP ports), once ready."""
    process = await serve_process(
        xds_port,
        http_port,
        "--config",
        str(root),
        "--poll-interval",
        "0.05",
        stderr=stderr,
        wrapper=wrapper,
    )
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
    except TimeoutError:
        process.kill()
        raise
    return process


async def _stop(process: asyncio.subprocess.Process) -> str:
    """SIGTERM, a clean exit, and what the server logged."""
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
    assert process.stderr is not None
    return (await process.stderr.read()).decode()


async def _synced_ztunnel(channel: grpc.aio.Channel) -> DeltaClient:
    client = ztunnel_client(channel)
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    await changes(client, lambda c: AUTHORIZATION in c.updated and ADDRESS in c.updated)
    return client


@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is needed to drop DAC caps")
@pytest.mark.parametrize("unreadable", ["root", "subdirectory"])
async def test_unreadable_directory_keeps_the_last_good_objects(
    tmp_path: Path, unreadable: str
) -> None:
    from xds.sources.demo import demo_directory

    root = tmp_path / "mesh"
    sub = root / "policies"
    shutil.copytree(demo_directory(), root, ignore=shutil.ignore_patterns("*.py"))
    sub.mkdir()
    (root / "60-policies.yaml").rename(sub / "60-policies.yaml")
    target = root if unreadable == "root" else sub
    xds_port, http_port = free_port(), free_port()
    assert SETPRIV is not None
    process = await _serve(
        root,
        xds_port,
        http_port,
        stderr=asyncio.subprocess.PIPE,
        wrapper=(SETPRIV, "--bounding-set", "-dac_override,-dac_read_search", "--"),
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = await _synced_ztunnel(channel)
            policies = set(client.held[AUTHORIZATION])
            assert policies

            target.chmod(0)
            try:
                with pytest.raises(TimeoutError):  # nothing is taken away
                    await client.next(within=1.0)
            finally:
                target.chmod(0o755)
            with pytest.raises(TimeoutError):  # nor on recovery
                await client.next(within=0.5)
            assert set(client.held[AUTHORIZATION]) == policies

            # A deliberate removal still removes.
            (sub / "60-policies.yaml").unlink()
            seen = await changes(client, lambda c: bool(c.removed.get(AUTHORIZATION)))
            assert seen.removed[AUTHORIZATION] == policies
            await client.close()
    finally:
        log = await _stop(process)
    assert "cannot read directory" in log and "Permission denied" in log


PATHOLOGICAL = {
    "deep.json": "[" * 200_000 + "]" * 200_000,
    "digits.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: huge, uid: "
    + "1" * 5_000
    + "}\n",
    "digits.json": '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j", '
    '"generation": ' + "9" * 5_000 + "}}",
}


async def test_pathological_files_are_their_own_errors(tmp_path: Path) -> None:
    """Input the parsers were not written for fails that file, named, at start-up and
    later; the source goes on serving the rest and applying edits."""
    from xds.sources.demo import demo_directory

    root = tmp_path / "mesh"
    shutil.copytree(demo_directory(), root, ignore=shutil.ignore_patterns("*.py"))
    (root / "00-deep.json").write_text(PATHOLOGICAL["deep.json"])
    (root / "zero.yaml").symlink_to("/dev/zero")
    xds_port, http_port = free_port(), free_port()
    process = await _serve(root, xds_port, http_port, stderr=asyncio.subprocess.PIPE)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            client = await _synced_ztunnel(channel)
            held = set(client.held[ADDRESS])
            assert held
            for name, text in PATHOLOGICAL.items():
                (root / f"70-{name}").write_text(text)
            with pytest.raises(TimeoutError):  # nothing served changes
                await client.next(within=1.0)
            assert http_ready(http_port)
            # ... and the source is alive: a real edit still arrives.
            (root / "21-details.yaml").unlink()
            seen = await changes(client, lambda c: bool(c.removed.get(ADDRESS)))
            assert "Kubernetes//Pod/bookinfo/details-v1-65cfcf56f9-kmqgz" in seen.removed[ADDRESS]
            await client.close()
    finally:
        log = await _stop(process)
    for name in ("00-deep.json", "70-deep.json", "70-digits.yaml", "70-digits.json"):
        assert f"{name}: document 0: invalid YAML/JSON" in log, name
    assert "zero.yaml" in log and "not a regular file" in log
    assert "Traceback" not in log and "Event loop is closed" not in log


def _pods_file(count: int, revision: str) -> str:
    return builders.yaml_text(
        *(
            builders.pod(
                "bookinfo",
                f"burst-{index}",
                [f"10.244.9.{index + 1}"],
                labels={"app": "burst", "rev": revision},
                node="node-a",
                service_account="bookinfo-ratings",
            )
            for index in range(count)
        )
    )


async def test_sigkill_mid_push_then_restart_converges_to_what_render_says(tmp_path: Path) -> None:
    """Proxies keep their state across a crash; on reconnect they name what they hold
    (initial_resource_versions) and end with exactly what the mesh says: no loss, no
    leftovers, whatever the crash interrupted."""
    import json

    from google.protobuf import json_format

    from xds.proto.istio.security import authorization_pb2
    from xds.proto.istio.workload import workload_pb2
    from xds.sources.demo import demo_directory

    root = tmp_path / "mesh"
    shutil.copytree(demo_directory(), root, ignore=shutil.ignore_patterns("*.py"))
    (root / "80-burst.yaml").write_text(_pods_file(150, "one"))
    xds_port, http_port = free_port(), free_port()
    process = await _serve(root, xds_port, http_port)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{xds_port}") for _ in range(3)]
    try:
        clients = [await _synced_ztunnel(channel) for channel in channels]
        # A burst of changes, and the server killed while it reads and pushes them.
        (root / "80-burst.yaml").write_text(_pods_file(120, "two"))
        (root / "60-policies.yaml").unlink()
        await asyncio.sleep(0.08)
        kill_tree(process.pid)  # the supervisor and every process of --workers at once
        await process.wait()
        process = await _serve(root, xds_port, http_port)
        # Each proxy reconnects with what it holds, and catches up.
        again = []
        for old, channel in zip(clients, channels, strict=True):
            client = ztunnel_client(channel)
            client.held = old.held
            await client.connect({ADDRESS: [], AUTHORIZATION: []})
            again.append(client)
        for client in again:
            while True:
                try:
                    await client.next(within=1.0)
                except TimeoutError:
                    break
        render = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "xds",
            "render",
            "--config",
            str(root),
            "--node",
            "ztunnel~10.244.0.2~ztunnel-node-a.istio-system~istio-system.svc.cluster.local",
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(render.communicate(), 60)
        assert render.returncode == 0
        rendered = json.loads(out)
        messages = {ADDRESS: workload_pb2.Address, AUTHORIZATION: authorization_pb2.Authorization}
        for client in again:
            for type_url, message in messages.items():
                held = {
                    name: json_format.MessageToDict(message.FromString(item.body))
                    for name, item in client.held.get(type_url, {}).items()
                }
                wanted = {item["name"]: item["resource"] for item in rendered.get(type_url, [])}
                assert held.keys() == wanted.keys(), type_url
                assert held == wanted, type_url
            assert not any(
                name.endswith("/productpage-viewer") for name in client.held.get(AUTHORIZATION, {})
            )
            await client.close()
    finally:
        for channel in channels:
            await channel.close()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 10)
