"""Shared by the debugging e2e tests: a control plane with both gRPC ports and tokens,
proxies that connect to it, and the real grpcurl and a raw HTTP client against it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from xds.client import DeltaClient, SotwClient
from xds.plane.app import ControlPlane
from xds.security.identity import Identity
from xds.security.plane import SecurityOptions
from xds.security.tokens import TokenGrant, add_grant
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, LISTENER

from ..conftest import running_control_plane
from ..helpers import wait_until
from ..security.support import ISTIOD_NAME

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
ZTUNNEL = "ztunnel~10.244.1.2~ztunnel-a.istio-system~istio-system.svc.cluster.local"
WAYPOINT = "waypoint~10.244.1.50~waypoint-5d7f-abcde.bookinfo~bookinfo.svc.cluster.local"
ISTIOCTL = "sidecar~0.0.0.0~istioctl-1.istio-system~istio-system.svc.cluster.local"
GATEWAY_LABEL = "gateway.networking.k8s.io/gateway-name"
ACCOUNTS = (
    "istio-system/default",
    "istio-system/ztunnel",
    "bookinfo/waypoint",
    "bookinfo/bookinfo-productpage",
)


@dataclass
class Plane:
    plane: ControlPlane
    ca_dir: Path
    tokens: dict[str, str]
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.ca_dir / "root-cert.pem"

    def channel(self, *, tls: bool = False) -> grpc.aio.Channel:
        if tls:
            channel = grpc.aio.secure_channel(
                f"127.0.0.1:{self.plane.ports.secure}",
                grpc.ssl_channel_credentials(self.root.read_bytes()),
                options=[("grpc.ssl_target_name_override", ISTIOD_NAME)],
            )
        else:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.plane.ports.xds}")
        self.channels.append(channel)
        return channel

    def auth(self, account: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.tokens[account]}")]

    async def ztunnel(self, *, nack: Callable[[str, Any], str | None] | None = None) -> DeltaClient:
        client = DeltaClient(
            self.channel(),
            ZTUNNEL,
            nack=nack,
            metadata={"NODE_NAME": "node-a", "ISTIO_VERSION": "1.29.0"},
        )
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        self.clients.append(client)
        return client

    async def waypoint(self) -> SotwClient:
        client = SotwClient(
            self.channel(),
            WAYPOINT,
            metadata={"LABELS": {GATEWAY_LABEL: "waypoint"}, "NAMESPACE": "bookinfo"},
        )
        await client.connect({CLUSTER: [], LISTENER: []})
        self.clients.append(client)
        return client

    def istioctl(self, account: str = "istio-system/default") -> SotwClient:
        """An ADS stream as ``istioctl proxy-status`` opens it: TLS, a token, GENERATOR=event."""
        client = SotwClient(
            self.channel(tls=True),
            ISTIOCTL,
            metadata={"GENERATOR": "event"},
            metadata_headers=self.auth(account),
        )
        self.clients.append(client)
        return client

    async def settled(self, proxies: int) -> None:
        """Until ``proxies`` proxies are connected and each answered everything it was sent."""

        def done() -> bool:
            connections = [c for c in self.plane.connections if c.statuses]
            return len(connections) == proxies and all(
                s.sent_nonce and s.state != "STALE"
                for c in connections
                for s in c.statuses.values()
            )

        await wait_until(done)

    async def quiet(self) -> None:
        """Until no config event waits for a rebuild, so that the next batch holds
        only what the test changes (start-up events are consumed by the first build)."""
        await wait_until(lambda: self.plane.pipeline.debouncer.pending == 0)

    def connection(self, proxy: str) -> Any:
        [connection] = [c for c in self.plane.connections if c.node.id == proxy]
        return connection


@pytest.fixture(name="debug_plane")
async def debug_plane_fixture(demo_copy: Path, tmp_path: Path) -> AsyncIterator[Plane]:
    """A control plane with both gRPC ports, tokens for ``ACCOUNTS``, and clean-up of
    the clients and channels a test opens through it. Import it to use it."""
    ca_dir = tmp_path / "ca"
    tokens_file = ca_dir / "tokens"
    ca_dir.mkdir()
    tokens = {
        account: add_grant(tokens_file, TokenGrant(Identity.from_account(account)))
        for account in ACCOUNTS
    }
    async with running_control_plane(
        demo_copy, secure_port=-1, security=SecurityOptions(ca_dir=ca_dir)
    ) as plane:
        result = Plane(plane, ca_dir, tokens)
        yield result
        for client in result.clients:
            await client.close()
        for channel in result.channels:
            await channel.close()


@dataclass
class Ran:
    status: int
    stdout: str
    stderr: str


async def grpcurl(*args: str) -> Ran:
    """The real grpcurl binary, run without blocking the server's event loop."""
    process = await asyncio.create_subprocess_exec(
        GRPCURL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def address(plane: Plane, *, tls: bool = False) -> str:
    return f"127.0.0.1:{plane.plane.ports.secure if tls else plane.plane.ports.xds}"


def tls_flags(plane: Plane, account: str | None) -> list[str]:
    """grpcurl flags for the TLS port: trust the mesh root, present ``account``'s token."""
    flags = ["-cacert", str(plane.root), "-authority", ISTIOD_NAME]
    if account is not None:
        flags += ["-H", f"authorization: Bearer {plane.tokens[account]}"]
    return flags


async def http_get(
    host: str, port: int, target: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]
