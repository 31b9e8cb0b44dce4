"""README "Running a stock ztunnel against xds serve": the section works as written.

The manifest, the ``xds`` commands and ztunnel's environment are read from the
README. The server runs as the README says (ports moved to free ones); a client
then does what a stock ztunnel does with that environment (ztunnel.md §1.1,
§1.4): TLS to the ``XDS_ADDRESS`` host verified against ``XDS_ROOT_CA``, the
token file sent verbatim with ``clusterid``, its node id and metadata built from
``POD_*``/``NODE_NAME``/``INSTANCE_IP``/``ISTIO_META_*``, Delta wildcard on both
types, and a CSR for its own identity.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from cryptography import x509

from xds.client import DeltaClient
from xds.proto.istio.security import authorization_pb2
from xds.proto.istio.workload import workload_pb2
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import REPO
from ..helpers import free_port, http_ready, wait_until
from ..security.support import ec_key, make_csr, verify_chain

SECTION = "\n## Running a stock ztunnel against `xds serve` (no cluster)\n"


def section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def block(kind: str) -> str:
    (found,) = re.findall(rf"```{kind}\n(.*?)```", section(), re.S)
    return str(found)


def ztunnel_env() -> dict[str, str]:
    return dict(line.split("=", 1) for line in block("sh").splitlines() if line.strip())


Headers = list[tuple[str, str]]


def ztunnel_request(env: dict[str, str], work: Path) -> tuple[str, dict[str, str], Headers]:
    """Node id, node metadata and call headers, as ztunnel derives them from its env."""
    node_id = (
        f"ztunnel~{env.get('INSTANCE_IP', '1.1.1.1')}~{env['POD_NAME']}."
        f"{env['POD_NAMESPACE']}~{env['POD_NAMESPACE']}.svc.cluster.local"
    )
    metadata = {
        "NAME": env["POD_NAME"],
        "NAMESPACE": env["POD_NAMESPACE"],
        "INSTANCE_IPS": env.get("INSTANCE_IP", "1.1.1.1"),
        "NODE_NAME": env.get("NODE_NAME", ""),
    }
    metadata.update(
        {k.removeprefix("ISTIO_META_"): v for k, v in env.items() if k.startswith("ISTIO_META_")}
    )
    token = (work / env["AUTH_TOKEN"]).read_text()  # verbatim, as ztunnel reads it
    headers = [
        ("authorization", f"Bearer {token}"),
        ("clusterid", env.get("ISTIO_META_CLUSTER_ID", "Kubernetes")),
    ]
    return node_id, metadata, headers


@pytest.mark.parametrize("on_demand", [False, True], ids=["wildcard", "on-demand"])
async def test_readme_ztunnel_section_works(tmp_path: Path, on_demand: bool) -> None:
    work = tmp_path
    (work / "mesh").mkdir()
    (work / "mesh" / "local.yaml").write_text(block("yaml"))
    commands = [line[2:] for line in block("console").splitlines() if line.startswith("$ ")]
    serve, token_add = commands
    assert serve.startswith("xds serve ") and serve.endswith(" &")
    assert token_add.startswith("xds token add ")

    secure_port, http_port = free_port(), free_port()
    env = ztunnel_env()
    assert env["PROXY_MODE"] == "dedicated"
    target = urlsplit(env["XDS_ADDRESS"])
    assert target.port == 15012 and env["CA_ADDRESS"] == env["XDS_ADDRESS"]
    argv = [
        *shlex.split(serve.removesuffix(" &"))[2:],
        "--listen-address",
        "127.0.0.1",
        "--xds-port",
        "0",
        "--secure-port",
        str(secure_port),
        "--http-port",
        str(http_port),
    ]
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xds",
        "serve",
        *argv,
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_until(lambda: http_ready(http_port), within=30)
        added = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "xds",
            *shlex.split(token_add)[1:],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert await added.wait() == 0

        node_id, metadata, headers = ztunnel_request(env, work)
        root = (work / env["XDS_ROOT_CA"]).read_bytes()
        assert env["CA_ROOT_CA"] == env["XDS_ROOT_CA"]
        # The server certificate must verify for the XDS_ADDRESS host, as rustls checks it.
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{secure_port}",
            grpc.ssl_channel_credentials(root),
            options=[("grpc.ssl_target_name_override", str(target.hostname))],
        ) as channel:
            client = DeltaClient(channel, node_id, metadata=metadata, metadata_headers=headers)
            # XDS_ON_DEMAND=true: Address subscribes to nothing; the README says how
            # the rest arrives (the node's workloads unasked, the VIP looked up).
            await client.connect(
                {ADDRESS: [], AUTHORIZATION: []}, on_demand=[ADDRESS] if on_demand else []
            )
            received: dict[str, list[bytes]] = {}
            while len(received) < 2:
                response = await client.next()
                received[response.type_url] = [r.resource.value for r in response.resources]
            if on_demand:
                assert "XDS_ON_DEMAND=true" in section()
                client.subscribe(ADDRESS, ["/127.10.0.1"])
                lookup = await client.next()
                assert list(lookup.removed_resources) == ["/127.10.0.1"]
                received[ADDRESS] += [r.resource.value for r in lookup.resources]
            addresses = [workload_pb2.Address.FromString(b) for b in received[ADDRESS]]
            workloads = [a.workload for a in addresses if a.HasField("workload")]
            services = [a.service for a in addresses if a.HasField("service")]
            namespace, name, account = env["PROXY_WORKLOAD_INFO"].split("/")
            # ztunnel finds its own workload by name, namespace, account and node.
            (own,) = [
                w
                for w in workloads
                if (w.name, w.namespace, w.service_account, w.node)
                == (name, namespace, account, env["NODE_NAME"])
            ]
            assert own.addresses == [bytes([127, 0, 0, 1])]
            assert own.tunnel_protocol == workload_pb2.TunnelProtocol.HBONE
            (service,) = services
            assert service.hostname == "example.default.svc.cluster.local"
            assert [a.address for a in service.addresses] == [bytes([127, 10, 0, 1])]
            assert [(p.service_port, p.target_port) for p in service.ports] == [(80, 8080)]
            for body in received[AUTHORIZATION]:
                authorization_pb2.Authorization.FromString(body)
            await client.close()

            from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

            identity = f"spiffe://cluster.local/ns/{namespace}/sa/{account}"
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
            reply = await stub.CreateCertificate(
                ca_pb2.IstioCertificateRequest(
                    csr=make_csr(identity, ec_key()), validity_duration=86400
                ),
                metadata=headers,
                timeout=10,
            )
            chain = list(reply.cert_chain)
            assert verify_chain(tmp_path / "verify", chain).returncode == 0
            leaf = x509.load_pem_x509_certificate(chain[0].encode())
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.UniformResourceIdentifier) == [identity]
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 10) == 0
