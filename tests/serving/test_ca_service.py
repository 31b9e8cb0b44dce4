"""IstioCertificateService over real TLS gRPC on loopback, checked with openssl.

The client dials 127.0.0.1, verifies the server as ``istiod.istio-system.svc``
against the CA's root, and authenticates with a bearer token from a tokens
file, as ztunnel does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import SignatureAlgorithmOID
from google.protobuf import struct_pb2

from tests.security.support import (
    TD,
    CaServer,
    ca_server,
    leaf_uris,
    make_csr,
    openssl_verify,
    rsa_key,
    verify_chain,
    write_plugin_ca,
)
from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from xds.security.authn import InsecureDevAuthenticator, TokensFileAuthenticator
from xds.security.authz import CertificateAuthorizer
from xds.security.ca import CertificateAuthority, IssuedCertificate, KeyAlgorithm, fingerprint
from xds.security.ca_files import CaDirectory
from xds.security.identity import Identity
from xds.security.tokens import TokenGrant, TokensFile, add_grant
from xds.serving import ca_service

APP = Identity(TD, "default", "app")
DB = Identity(TD, "data", "db")
ZTUNNEL = Identity(TD, "istio-system", "ztunnel")


class Pods:
    """The pod inventory: app runs on node-a, db on node-b."""

    def has_pod(self, identity: Identity, node: str) -> bool:
        return (identity, node) in {(APP, "node-a"), (DB, "node-b")}


@dataclass
class Mesh:
    server: CaServer
    ca_dir: Path
    app_token: str
    ztunnel_token: str
    expired_token: str


def tokens(path: Path) -> tuple[str, str, str]:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    return (
        add_grant(path, TokenGrant(APP)),
        add_grant(path, TokenGrant(ZTUNNEL, node="node-a")),
        add_grant(path, TokenGrant(APP, expires=past)),
    )


async def start(ca_dir: Path, ca: CertificateAuthority) -> AsyncIterator[Mesh]:
    app, ztunnel, expired = tokens(ca_dir / "tokens")
    authenticator = TokensFileAuthenticator(TokensFile(ca_dir / "tokens", TD))
    authorizer = CertificateAuthorizer(TD, pods=Pods())
    async with ca_server(ca, authenticator, authorizer) as server:
        yield Mesh(server, ca_dir, app, ztunnel, expired)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    material, _ = CaDirectory(tmp_path).load_or_create(organization=TD)
    async for running in start(tmp_path, CertificateAuthority(material)):
        yield running


async def expect_error(call: object, code: grpc.StatusCode, message: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() is code, info.value.details()
    details = info.value.details() or ""
    assert message in details, details
    return details


async def test_p256_csr_with_token_yields_a_chain_openssl_accepts(
    mesh: Mesh, tmp_path: Path
) -> None:
    chain = await mesh.server.create_certificate(make_csr(), mesh.app_token)
    assert len(chain) == 2
    assert chain[-1] == (mesh.ca_dir / "root-cert.pem").read_text()
    result = openssl_verify(tmp_path / "v", chain[0], (mesh.ca_dir / "root-cert.pem").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert leaf_uris(chain[0]) == [APP.uri]
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == dt.timedelta(hours=24, minutes=1)  # default TTL, backdated a minute


async def test_csr_sans_are_ignored(mesh: Mesh) -> None:
    chain = await mesh.server.create_certificate(make_csr(DB.uri), mesh.app_token)
    assert leaf_uris(chain[0]) == [APP.uri]


async def test_requested_ttl_is_honoured(mesh: Mesh) -> None:
    chain = await mesh.server.create_certificate(make_csr(), mesh.app_token, ttl_seconds=3600)
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=1, minutes=1)


async def test_ttl_above_maximum(mesh: Mesh) -> None:
    await expect_error(
        mesh.server.create_certificate(make_csr(), mesh.app_token, ttl_seconds=91 * 86400),
        grpc.StatusCode.INVALID_ARGUMENT,
        "exceeds the maximum of 7776000s",
    )


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        ("garbage", "csr is not PEM"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n"
            "-----END CERTIFICATE REQUEST-----\n",
            "csr could not be parsed as PKCS#10",
        ),
        ("", "csr is empty"),
    ],
)
async def test_garbage_csr(mesh: Mesh, csr: str, message: str) -> None:
    await expect_error(
        mesh.server.create_certificate(csr, mesh.app_token),
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )


async def test_weak_rsa_csr(mesh: Mesh) -> None:
    await expect_error(
        mesh.server.create_certificate(make_csr(key=rsa_key(1024)), mesh.app_token),
        grpc.StatusCode.INVALID_ARGUMENT,
        "csr key is RSA 1024",
    )


@pytest.mark.parametrize(
    ("which", "message"),
    [("missing", "no credentials"), ("bad", "not known"), ("expired", "expired at")],
)
async def test_unauthenticated(mesh: Mesh, which: str, message: str) -> None:
    token = {"missing": None, "bad": "b" * 43, "expired": mesh.expired_token}[which]
    details = await expect_error(
        mesh.server.create_certificate(make_csr(), token), grpc.StatusCode.UNAUTHENTICATED, message
    )
    assert not token or token not in details


async def test_node_agent_impersonates_a_pod_on_its_node(mesh: Mesh, tmp_path: Path) -> None:
    chain = await mesh.server.create_certificate(
        make_csr(APP.uri), mesh.ztunnel_token, impersonate=APP.uri
    )
    assert leaf_uris(chain[0]) == [APP.uri]
    assert verify_chain(tmp_path, chain).returncode == 0


async def test_impersonation_of_a_pod_on_another_node_is_refused(mesh: Mesh) -> None:
    await expect_error(
        mesh.server.create_certificate(make_csr(DB.uri), mesh.ztunnel_token, impersonate=DB.uri),
        grpc.StatusCode.PERMISSION_DENIED,
        f"no pod with identity {DB.uri} runs on node 'node-a'",
    )


async def test_impersonation_by_a_workload_is_refused(mesh: Mesh) -> None:
    await expect_error(
        mesh.server.create_certificate(make_csr(DB.uri), mesh.app_token, impersonate=DB.uri),
        grpc.StatusCode.PERMISSION_DENIED,
        "default/app is not a trusted node account",
    )


async def test_impersonated_identity_must_be_a_string(mesh: Mesh) -> None:
    stub = ca_pb2_grpc.IstioCertificateServiceStub(mesh.server.channel())
    request = ca_pb2.IstioCertificateRequest(csr=make_csr())
    request.metadata.fields["ImpersonatedIdentity"].CopyFrom(struct_pb2.Value(number_value=1))
    await expect_error(
        stub.CreateCertificate(request, metadata=[("authorization", f"Bearer {mesh.app_token}")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ImpersonatedIdentity must be a string",
    )


async def test_tokens_added_while_serving_work_at_once(mesh: Mesh) -> None:
    token = add_grant(mesh.ca_dir / "tokens", TokenGrant(DB))
    chain = await mesh.server.create_certificate(make_csr(), token)
    assert leaf_uris(chain[0]) == [DB.uri]


async def test_counters(mesh: Mesh) -> None:
    before = (
        ca_service.CSR_COUNT.value(),
        ca_service.ISSUED.value(),
        ca_service.AUTHENTICATION_FAILURES.value(),
        ca_service.CSR_PARSING_ERRORS.value(),
    )
    await mesh.server.create_certificate(make_csr(), mesh.app_token)
    for call in (
        mesh.server.create_certificate(make_csr(), None),
        mesh.server.create_certificate("x", mesh.app_token),
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    after = (
        ca_service.CSR_COUNT.value(),
        ca_service.ISSUED.value(),
        ca_service.AUTHENTICATION_FAILURES.value(),
        ca_service.CSR_PARSING_ERRORS.value(),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 1, 1, 1]


async def test_restart_keeps_the_root(tmp_path: Path) -> None:
    material, created = CaDirectory(tmp_path).load_or_create(organization=TD)
    assert created
    root_file = (tmp_path / "root-cert.pem").read_text()
    async for first in start(tmp_path, CertificateAuthority(material)):
        before = await first.server.create_certificate(make_csr(), first.app_token)
    again, created = CaDirectory(tmp_path).load_or_create(organization=TD)
    assert not created
    async for second in start(tmp_path, CertificateAuthority(again)):
        # The root file clients were given before the restart still verifies us.
        after = await second.server.create_certificate(
            make_csr(), second.app_token, channel=second.server.channel(root_file)
        )
    assert before[-1] == after[-1] == root_file
    assert second.server.ca.root_fingerprint == fingerprint(
        x509.load_pem_x509_certificate(root_file.encode())
    )


async def test_plugin_ca_chains_through_the_intermediate(tmp_path: Path) -> None:
    plugin = write_plugin_ca(tmp_path / "cacerts")
    material, _ = CaDirectory(plugin.directory).load_or_create(organization=TD)
    async for mesh in start(plugin.directory, CertificateAuthority(material)):
        chain = await mesh.server.create_certificate(make_csr(), mesh.app_token)
    assert len(chain) == 3
    assert x509.load_pem_x509_certificate(chain[1].encode()) == plugin.intermediate
    root = (plugin.directory / "root-cert.pem").read_text()
    assert chain[-1] == root
    verified = openssl_verify(tmp_path / "v", chain[0], root, [chain[1]])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    partial = openssl_verify(tmp_path / "p", chain[0], chain[1], partial_chain=True)
    assert partial.returncode == 0, partial.stdout + partial.stderr


async def test_rsa_2048_ca(tmp_path: Path) -> None:
    material = CaDirectory(tmp_path).create(KeyAlgorithm.RSA_2048, organization=TD)
    async for mesh in start(tmp_path, CertificateAuthority(material)):
        chain = await mesh.server.create_certificate(make_csr(), mesh.app_token)
    assert verify_chain(tmp_path / "v", chain).returncode == 0
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256


async def test_insecure_dev_mode_signs_what_the_csr_asks(tmp_path: Path) -> None:
    material, _ = CaDirectory(tmp_path).load_or_create(organization=TD)
    ca = CertificateAuthority(material)
    async with ca_server(ca, InsecureDevAuthenticator()) as server:
        chain = await server.create_certificate(make_csr(DB.uri))
        assert leaf_uris(chain[0]) == [DB.uri]
        await expect_error(
            server.create_certificate(make_csr(None)),
            grpc.StatusCode.PERMISSION_DENIED,
            "one spiffe:// URI SAN",
        )
        await expect_error(
            server.create_certificate("junk"), grpc.StatusCode.INVALID_ARGUMENT, "csr is not PEM"
        )


class SlowCa(CertificateAuthority):
    def sign_csr(
        self, csr_pem: str | bytes, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        time.sleep(0.3)  # blocking, like a big RSA signature
        return super().sign_csr(csr_pem, identity, ttl)


async def test_signing_does_not_block_the_event_loop(tmp_path: Path) -> None:
    material, _ = CaDirectory(tmp_path).load_or_create(organization=TD)
    async for mesh in start(tmp_path, SlowCa(material)):
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        await mesh.server.create_certificate(make_csr(), mesh.app_token)
        beat.cancel()
    assert ticks >= 15  # ~30 if the loop ran freely; 0-1 if signing held it
