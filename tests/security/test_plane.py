"""MeshSecurity: options -> a working TLS port, and CA reloads reaching every consumer."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from xds.cli.ca import add_serve_arguments, security_options
from xds.security.authn import InsecureDevAuthenticator, TokensFileAuthenticator
from xds.security.ca_files import CaDirectory
from xds.security.identity import Identity
from xds.security.plane import MeshSecurity, SecurityOptions
from xds.security.tokens import TokenGrant, add_grant
from xds.serving.ca_service import CertificateService

from .support import ISTIOD_NAME, TD, CaServer, leaf_uris, make_csr

APP = Identity(TD, "default", "app")


def test_open_creates_once_and_reuses(tmp_path: Path) -> None:
    options = SecurityOptions(ca_dir=tmp_path)
    first = MeshSecurity.open(options)
    second = MeshSecurity.open(options)
    assert first.ca.root_fingerprint == second.ca.root_fingerprint
    assert isinstance(first.authenticator, TokensFileAuthenticator)
    assert first.authenticator.tokens.path == tmp_path / "tokens"
    dev = MeshSecurity.open(SecurityOptions(ca_dir=tmp_path, insecure_dev_auth=True))
    assert isinstance(dev.authenticator, InsecureDevAuthenticator)
    for security in (first, second, dev):
        security.close()


async def test_tls_port_from_options(tmp_path: Path) -> None:
    security = MeshSecurity.open(SecurityOptions(ca_dir=tmp_path, ca_reload_interval=0.05))
    token = add_grant(tmp_path / "tokens", TokenGrant(APP))
    server = grpc.aio.server()
    service = CertificateService(security.signer, security.authenticator, security.authorizer)
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_secure_port("127.0.0.1:0", security.server_credentials())
    await server.start()
    changed = asyncio.Event()
    watcher = asyncio.create_task(security.watch_ca(changed.set))
    client = CaServer(port, security.ca, security.serving, [])
    try:
        root_before = (tmp_path / "root-cert.pem").read_text()
        chain = await client.create_certificate(make_csr(), token)
        assert leaf_uris(chain[0]) == [APP.uri] and chain[-1] == root_before
        pair = await security.key_pairs.get(APP)

        # An operator replaces the CA while serving: everything follows.
        CaDirectory(tmp_path).create(organization=TD, force=True)
        await asyncio.wait_for(changed.wait(), 5)
        root_after = (tmp_path / "root-cert.pem").read_text()
        chain = await client.create_certificate(
            make_csr(), token, channel=client.channel(root_after)
        )
        assert chain[-1] == root_after != root_before
        rotated = await security.key_pairs.refresh_due()
        assert [p.root_fingerprint for p in rotated] == [security.ca.root_fingerprint]
        assert rotated[0].root_fingerprint != pair.root_fingerprint
    finally:
        watcher.cancel()
        for channel in client.channels:
            await channel.close()
        await server.stop(None)
        security.close()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return parser.parse_args(argv)


def test_serve_flags_defaults() -> None:
    options = security_options(parse(), trust_domain="example.org")
    assert options == SecurityOptions(trust_domain="example.org")


def test_serve_flags() -> None:
    args = parse(
        "--ca-dir",
        "/x",
        "--ca-key-algorithm",
        "rsa-2048",
        "--insecure-dev-auth",
        "--trusted-node-accounts",
        "kube-system/ztunnel,istio-system/ztunnel",
        "--tls-host",
        "XDS.example.com",
        "--tls-host",
        "10.0.0.1",
        "--max-cert-ttl",
        "30d",
        "--revision",
        "canary",
    )
    options = security_options(args, trust_domain=TD)
    assert options.ca_dir == Path("/x")
    assert options.trusted_node_accounts == {"kube-system/ztunnel", "istio-system/ztunnel"}
    assert options.extra_hosts == ("xds.example.com", "10.0.0.1")
    assert options.max_cert_ttl == dt.timedelta(days=30)
    assert options.insecure_dev_auth and options.revision == "canary"
    assert (
        security_options(
            parse("--trusted-node-accounts", ""), trust_domain=TD
        ).trusted_node_accounts
        == frozenset()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--tls-host", "not a host"],
        ["--trusted-node-accounts", "ztunnel"],
        ["--max-cert-ttl", "forever"],
        ["--ca-key-algorithm", "dsa"],
    ],
)
def test_bad_serve_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2


def test_istiod_name_is_on_the_serving_certificate(tmp_path: Path) -> None:
    security = MeshSecurity.open(SecurityOptions(ca_dir=tmp_path, extra_hosts=("xds.example",)))
    san = security.serving.certificate.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert {ISTIOD_NAME, "xds.example"} <= set(san.get_values_for_type(x509.DNSName))
    security.close()
