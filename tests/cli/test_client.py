"""``xds client ztunnel``: a real process holding a ztunnel stream against a real server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from xds.security.plane import SecurityOptions

from ..conftest import REPO, running_control_plane
from ..helpers import wait_until, xds


async def client(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xds",
        "client",
        "ztunnel",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_it_holds_a_stream_the_server_sees_and_prints_each_response(
    demo_copy: Path, tmp_path: Path
) -> None:
    async with running_control_plane(demo_copy) as plane:
        process = await client("--xds-address", f"127.0.0.1:{plane.ports.xds}")
        try:
            assert process.stdout is not None
            lines = [
                (await asyncio.wait_for(process.stdout.readline(), 20)).decode() for _ in range(2)
            ]
            assert sorted(line.split(":")[0] for line in lines) == ["wads", "wds"]
            assert all(line.rstrip().endswith("ACKed") for line in lines)
            await wait_until(
                lambda: any(c.node.id == "ztunnel-7x2kq.istio-system" for c in plane.connections),
                within=10,
            )
            # A change arrives as its own line.
            (demo_copy / "20-productpage.yaml").write_text(
                (demo_copy / "20-productpage.yaml")
                .read_text()
                .replace("10.244.1.10", "10.244.1.99")
            )
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
            assert line.startswith("wds: +1 ")
        finally:
            process.terminate()
            await process.wait()


async def test_on_the_tls_port_it_presents_a_token(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    async with running_control_plane(
        None, secure_port=-1, security=SecurityOptions(ca_dir=ca_dir)
    ) as plane:
        token = tmp_path / "token"
        added = await asyncio.to_thread(
            xds,
            "token",
            "add",
            "istio-system/ztunnel",
            "--ca-dir",
            str(ca_dir),
            "--output",
            str(token),
        )
        assert added.returncode == 0, added.stderr
        process = await client(
            "--xds-address",
            f"127.0.0.1:{plane.ports.secure}",
            "--token-file",
            str(token),
            "--ca-root",
            str(ca_dir / "root-cert.pem"),
            "--responses",
            "2",
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert len(out.decode().splitlines()) == 2
        # Without the token the same port refuses it, in one line.
        process = await client(
            "--xds-address",
            f"127.0.0.1:{plane.ports.secure}",
            "--token-file",
            str(tmp_path / "missing"),
            "--ca-root",
            str(ca_dir / "root-cert.pem"),
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 1
        assert err.decode().startswith("xds client ztunnel: ") and err.decode().count("\n") == 1


def test_a_node_id_that_is_not_a_ztunnels_is_refused() -> None:
    result = xds("client", "ztunnel", "--node-id", "waypoint~1.2.3.4~w.ns~ns.svc.cluster.local")
    assert result.returncode == 1
    assert result.stderr == (
        "xds client ztunnel: --node-id 'waypoint~1.2.3.4~w.ns~ns.svc.cluster.local' "
        "is not a ztunnel node id\n"
    )
    result = xds("client", "ztunnel", "--token-file", "t")
    assert result.returncode == 1 and "go together" in result.stderr
