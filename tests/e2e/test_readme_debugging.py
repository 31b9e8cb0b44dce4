"""README "## Debugging": every ``$ `` command runs as written against a test server.

The commands are taken from the README itself (fenced ``console`` blocks of the
section), so the documentation cannot drift from what works: ports and the CA
directory are substituted, then all lines run in order in one bash (the token
from ``xds token add`` is used by later lines) with the real ``grpcurl``,
``curl``, ``openssl`` and ``jq``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from pathlib import Path

import grpc

from xds.client import DeltaClient
from xds.plane.app import ControlPlane
from xds.security.plane import SecurityOptions
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import REPO, running_control_plane
from ..helpers import wait_until

ZTUNNEL = "ztunnel~10.244.1.2~ztunnel-7x2kq.istio-system~istio-system.svc.cluster.local"
_DONE = "<<<readme-command-done "

# A fragment of a command -> what its output must contain. Every key must match a
# README command, so dropping one from the README fails here too.
EXPECTED = {
    "localhost:15010 list": [
        "envoy.service.status.v3.ClientStatusDiscoveryService",
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        "grpc.health.v1.Health",
    ],
    "localhost:15010 describe": ["rpc FetchClientStatus", "rpc StreamClientStatus"],
    "Health/Check": ['"status": "SERVING"'],
    '-plaintext -d \'{"node_matchers"': [
        ZTUNNEL,
        '"config_status": "SYNCED"',
        '"client_status": "ACKED"',
    ],
    "token add": [],
    "localhost:15012 envoy.service.status": [ZTUNNEL, '"config_status": "SYNCED"', '"xds_config"'],
    "openssl req": [],
    "CreateCertificate": ['"cert_chain"', "-----BEGIN CERTIFICATE-----"],
    "/ready": ["ready"],
    "syncz?pretty": [
        '"proxy": "ztunnel-7x2kq.istio-system"',
        '"proxy_type": "ztunnel"',
        f'"{ADDRESS}"',
    ],
    "config_dump?proxyID": [ADDRESS, AUTHORIZATION],
    "/metrics": ["pilot_xds{", 'proxy_type="ztunnel"', 'pilot_xds_pushes{type="wds"}'],
    "loglevel": ['"ads": "debug"'],
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Debugging\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def substitute(command: str, plane: ControlPlane, ca_dir: Path) -> str:
    for default, port in (
        ("15010", plane.ports.xds),
        ("15012", plane.ports.secure),
        ("15014", plane.ports.http),
    ):
        command = command.replace(f"localhost:{default}", f"127.0.0.1:{port}")
    return command.replace("./ca", str(ca_dir))


async def run_all(commands: list[str], cwd: Path) -> list[tuple[int, str]]:
    """Run ``commands`` in one bash; returns (exit status, combined output) per command."""
    # pipefail: "curl ... | jq" fails when curl does.
    script = "set -o pipefail\n" + "".join(
        f'{{ {command}\n}} 2>&1; echo "{_DONE}$?"\n' for command in commands
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    parts = re.split(re.escape(_DONE) + r"(\d+)\n", output.decode())
    return [(int(status), text) for text, status in zip(parts[0::2], parts[1::2], strict=False)]


async def test_readme_debugging_commands_work(demo_copy: Path, tmp_path: Path) -> None:
    commands = readme_commands()
    for fragment in EXPECTED:
        assert any(fragment in c for c in commands), f"no README command contains {fragment!r}"
    ca_dir = tmp_path / "ca"
    async with running_control_plane(
        demo_copy, secure_port=-1, security=SecurityOptions(ca_dir=ca_dir)
    ) as plane:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{plane.ports.xds}")
        ztunnel = DeltaClient(channel, ZTUNNEL)
        await ztunnel.connect({ADDRESS: [], AUTHORIZATION: []})
        await wait_until(
            lambda: any(
                c.statuses
                and all(s.state == "SYNCED" for s in c.statuses.values())
                and len(c.statuses) == 2
                for c in plane.connections
            )
        )
        work = tmp_path / "work"
        work.mkdir()
        # The server runs in this process: keep the README's log level change local.
        ads_level = logging.getLogger("xds.ads").level
        try:
            results = await run_all([substitute(c, plane, ca_dir) for c in commands], work)
        finally:
            logging.getLogger("xds.ads").setLevel(ads_level)
        await ztunnel.close()
        await channel.close()

    assert len(results) == len(commands)
    for command, (status, output) in zip(commands, results, strict=True):
        assert status == 0, f"{command}\nexited {status}:\n{output}"
        for fragment, wanted in EXPECTED.items():
            if fragment in command:
                for text in wanted:
                    assert text in output, f"{command}\nlacks {text!r}:\n{output[:2000]}"
