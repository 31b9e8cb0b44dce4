"""Test helpers: CSRs, throwaway plug-in CAs, ``openssl verify``, a real TLS CA server."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from xds.security.authn import Authenticator
from xds.security.authz import CertificateAuthorizer
from xds.security.ca import (
    CaPrivateKey,
    CertificateAuthority,
    KeyAlgorithm,
    SigningMaterial,
    generate_root,
    key_to_pem,
    to_pem,
)
from xds.security.serving_tls import ServingCertificate, istiod_dns_names
from xds.security.signer import Signer
from xds.serving.ca_service import CertificateService

OPENSSL = "/usr/bin/openssl"
ISTIOD_NAME = "istiod.istio-system.svc"
TD = "cluster.local"


def new_material() -> SigningMaterial:
    """A fresh self-signed CA (EC P-256) of the test trust domain."""
    key = KeyAlgorithm.EC_P256.generate()
    root = generate_root(key, organization=TD)
    return SigningMaterial(key, root, (), (root,))


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def make_csr(
    uri: str | None = f"spiffe://{TD}/ns/default/sa/app",
    key: Any = None,
    algorithm: Any = None,
) -> str:
    """A ztunnel-style CSR: empty subject, one critical URI SAN."""
    key = key or ec_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if uri is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True
        )
    algorithm = hashes.SHA256() if algorithm is None else algorithm
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def leaf_uris(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


@dataclass
class PluginCa:
    """A root and an intermediate made by "someone else", written as cacerts files."""

    root_key: CaPrivateKey
    root: x509.Certificate
    key: CaPrivateKey
    intermediate: x509.Certificate
    directory: Path


def intermediate_for(
    root_key: CaPrivateKey, root: x509.Certificate, key: CaPrivateKey, name: str = "intermediate"
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )


def write_plugin_ca(directory: Path, *, key: CaPrivateKey | None = None) -> PluginCa:
    """istio's cacerts layout, with cert-chain.pem = ca-cert + root as istio's tools write it."""
    root_key = ec_key(ec.SECP384R1())
    root = generate_root(root_key, organization="plugin-root.example")
    key = key or ec_key()
    intermediate = intermediate_for(root_key, root, key)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca-key.pem").write_bytes(key_to_pem(key))
    (directory / "ca-cert.pem").write_text(to_pem(intermediate))
    (directory / "root-cert.pem").write_text(to_pem(root))
    (directory / "cert-chain.pem").write_text(to_pem(intermediate) + to_pem(root))
    return PluginCa(root_key, root, key, intermediate, directory)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def openssl_verify(
    workdir: Path,
    leaf: str,
    ca_file: str,
    untrusted: Sequence[str] = (),
    *,
    partial_chain: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``openssl verify -x509_strict -CAfile <ca_file> [-untrusted <certs>] <leaf>``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "leaf.pem").write_text(leaf)
    (workdir / "ca.pem").write_text(ca_file)
    args = [OPENSSL, "verify", "-x509_strict", "-CAfile", str(workdir / "ca.pem")]
    if partial_chain:
        args.append("-partial_chain")
    if untrusted:
        (workdir / "untrusted.pem").write_text("".join(untrusted))
        args += ["-untrusted", str(workdir / "untrusted.pem")]
    args.append(str(workdir / "leaf.pem"))
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def verify_chain(workdir: Path, chain: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Verify a CreateCertificate response (leaf, intermediates..., root) as a client would."""
    return openssl_verify(workdir, chain[0], chain[-1], chain[1:-1])


@dataclass
class CaServer:
    """A running TLS gRPC server with the CA service, and a way to call it."""

    port: int
    ca: CertificateAuthority
    serving: ServingCertificate
    channels: list[grpc.aio.Channel]

    def channel(self, root_pem: str | None = None) -> grpc.aio.Channel:
        """A client that dials 127.0.0.1 but verifies the server as istiod.istio-system.svc."""
        credentials = grpc.ssl_channel_credentials((root_pem or self.ca.root_pem).encode())
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{self.port}",
            credentials,
            options=[("grpc.ssl_target_name_override", ISTIOD_NAME)],
        )
        self.channels.append(channel)
        return channel

    async def create_certificate(
        self,
        csr: str,
        token: str | None = None,
        *,
        ttl_seconds: int = 0,
        impersonate: str | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> list[str]:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel or self.channel())
        metadata = [("authorization", f"Bearer {token}")] if token else []
        request = ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=ttl_seconds)
        if impersonate:
            request.metadata.update({"ImpersonatedIdentity": impersonate})
        response = await stub.CreateCertificate(request, metadata=metadata, timeout=10)
        return list(response.cert_chain)


@asynccontextmanager
async def ca_server(
    ca: CertificateAuthority,
    authenticator: Authenticator,
    authorizer: CertificateAuthorizer | None = None,
    *,
    extra_hosts: Sequence[str] = (),
) -> AsyncIterator[CaServer]:
    signer = Signer(ca)
    service = CertificateService(signer, authenticator, authorizer or CertificateAuthorizer(TD))
    serving = ServingCertificate(ca, istiod_dns_names(extra=extra_hosts))
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service.handler(),))
    port = server.add_secure_port("127.0.0.1:0", serving.server_credentials())
    await server.start()
    running = CaServer(port, ca, serving, [])
    try:
        yield running
    finally:
        for channel in running.channels:
            await channel.close()
        await server.stop(None)
        signer.close()
