"""Issuing: leaf shape, CSR validation, TTL rules, chains that openssl accepts."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from xds.security.ca import (
    CaError,
    CaExpiredError,
    CertificateAuthority,
    CsrError,
    KeyAlgorithm,
    SigningMaterial,
    TtlError,
    fingerprint,
    generate_root,
    key_to_pem,
    parse_csr,
    requested_identity,
    to_pem,
)
from xds.security.identity import Identity

from .support import (
    OPENSSL,
    TD,
    ec_key,
    intermediate_for,
    make_csr,
    openssl_verify,
    rsa_key,
    verify_chain,
)

APP = Identity(TD, "default", "app")


def self_signed(algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> CertificateAuthority:
    key = algorithm.generate()
    root = generate_root(key, organization=TD)
    return CertificateAuthority(SigningMaterial(key, root, (), (root,)))


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return self_signed()


def test_leaf_has_one_critical_uri_san_and_istio_extensions(ca: CertificateAuthority) -> None:
    issued = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    cert = issued.certificate
    assert cert.subject == x509.Name([])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert list(san.value) == [x509.UniformResourceIdentifier(APP.uri)]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment and not ku.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = ca.material.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == root_ski.value.digest
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert 0 < cert.serial_number < 2**128
    assert cert.issuer == ca.material.cert.subject


def test_rsa_csr_key_gets_key_encipherment(ca: CertificateAuthority) -> None:
    cert = ca.sign_csr(make_csr(key=rsa_key()), APP, dt.timedelta(hours=1)).certificate
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_serials_differ(ca: CertificateAuthority) -> None:
    serials = {
        ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1)).certificate.serial_number
        for _ in range(20)
    }
    assert len(serials) == 20


def test_validity_is_backdated_and_clamped_to_the_ca() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    key = ec_key()
    root = generate_root(key, organization=TD, ttl=dt.timedelta(days=2), now=now)
    ca = CertificateAuthority(SigningMaterial(key, root, (), (root,)), clock=lambda: now)
    short = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1)).certificate
    assert short.not_valid_before_utc == now - dt.timedelta(minutes=1)
    assert short.not_valid_after_utc == now + dt.timedelta(hours=1)
    long = ca.sign_csr(make_csr(), APP, dt.timedelta(days=30)).certificate
    assert long.not_valid_after_utc == root.not_valid_after_utc


def test_expired_ca_refuses_to_issue() -> None:
    then = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    key = ec_key()
    root = generate_root(key, organization=TD, ttl=dt.timedelta(days=1), now=then)
    ca = CertificateAuthority(SigningMaterial(key, root, (), (root,)))
    with pytest.raises(CaExpiredError, match="expired"):
        ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (0, dt.timedelta(hours=24)),
        (-5, dt.timedelta(hours=24)),
        (3600, dt.timedelta(hours=1)),
        (90 * 86400, dt.timedelta(days=90)),
        # below the floor: raised to 10 minutes, so a short-TTL client cannot spin
        (60, dt.timedelta(minutes=10)),
        (1, dt.timedelta(minutes=10)),
        (600, dt.timedelta(minutes=10)),
        (601, dt.timedelta(seconds=601)),
    ],
)
def test_ttl_rules(ca: CertificateAuthority, requested: int, expected: dt.timedelta) -> None:
    assert ca.resolve_ttl(requested) == expected


def test_ttl_above_maximum_is_an_error(ca: CertificateAuthority) -> None:
    with pytest.raises(TtlError, match="exceeds the maximum of 7776000s"):
        ca.resolve_ttl(90 * 86400 + 1)


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        ("", "csr is empty"),
        ("hello", "csr is not PEM"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "csr is a PEM CERTIFICATE, expected a CERTIFICATE REQUEST",
        ),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "could not be parsed as PKCS#10",
        ),
        ("x" * 70_000, "larger than"),
    ],
)
def test_malformed_csrs_are_named(csr: str, message: str) -> None:
    with pytest.raises(CsrError, match=message.replace("(", r"\(").replace("#", r"\#")):
        parse_csr(csr)


def test_tampered_csr_signature_is_rejected() -> None:
    der = parse_csr(make_csr(APP.uri)).public_bytes(Encoding.DER)
    assert b"/sa/app" in der
    forged = der.replace(b"/sa/app", b"/sa/apq")  # inside the signed part
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(forged).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(CsrError, match="csr signature does not verify"):
        parse_csr(pem)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda: ec.generate_private_key(ec.SECP521R1()), "secp521r1; only P-256 and P-384"),
        (lambda: rsa_key(1024), "RSA 1024"),
        (lambda: ed25519.Ed25519PrivateKey.generate(), "not supported"),
    ],
)
def test_unsupported_csr_keys(key: object, message: str) -> None:
    private = key()  # type: ignore[operator]
    algorithm = None if isinstance(private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = make_csr(key=private, algorithm=algorithm) if algorithm else _ed25519_csr(private)
    with pytest.raises(CsrError, match=message):
        parse_csr(csr)


def _ed25519_csr(key: ed25519.Ed25519PrivateKey) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, None)
        .public_bytes(Encoding.PEM)
        .decode()
    )


def test_sha1_signed_csr_is_rejected(tmp_path: Path) -> None:
    # cryptography no longer signs with SHA-1; openssl still does.
    key = tmp_path / "key.pem"
    key.write_bytes(key_to_pem(rsa_key()))
    csr = subprocess.run(
        [OPENSSL, "req", "-new", "-sha1", "-key", str(key), "-subj", "/CN=x"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with pytest.raises(CsrError, match="csr is signed with sha1"):
        parse_csr(csr)


def test_csr_sans_are_ignored(ca: CertificateAuthority) -> None:
    issued = ca.sign_csr(
        make_csr("spiffe://cluster.local/ns/kube-system/sa/admin"), APP, dt.timedelta(hours=1)
    )
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [APP.uri]


def test_requested_identity() -> None:
    assert requested_identity(parse_csr(make_csr(APP.uri))) == APP
    assert requested_identity(parse_csr(make_csr(None))) is None
    assert requested_identity(parse_csr(make_csr("https://example.com"))) is None


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_chain_verifies_with_openssl(algorithm: KeyAlgorithm, tmp_path: Path) -> None:
    ca = self_signed(algorithm)
    issued = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    assert len(issued.chain) == 2
    result = verify_chain(tmp_path, issued.chain)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = (
        SignatureAlgorithmOID.ECDSA_WITH_SHA256
        if algorithm is KeyAlgorithm.EC_P256
        else SignatureAlgorithmOID.RSA_WITH_SHA256
    )
    assert issued.certificate.signature_algorithm_oid == expected


def test_intermediate_chain_order_and_openssl(tmp_path: Path) -> None:
    root_key = ec_key()
    root = generate_root(root_key, organization="root")
    mid_key = ec_key()
    mid = intermediate_for(root_key, root, mid_key, "mid")
    ca = CertificateAuthority(SigningMaterial(mid_key, mid, (), (root,)))
    issued = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    assert issued.chain[1:] == (to_pem(mid), to_pem(root))
    assert all(pem.endswith("\n") for pem in issued.chain)
    assert issued.certificate.issuer == mid.subject
    result = verify_chain(tmp_path, issued.chain)
    assert result.returncode == 0, result.stdout + result.stderr
    # Trusting only the intermediate is enough with -partial_chain...
    partial = openssl_verify(tmp_path, issued.chain[0], issued.chain[1], partial_chain=True)
    assert partial.returncode == 0, partial.stdout + partial.stderr
    # ...but the root alone cannot verify the leaf without the intermediate.
    missing = openssl_verify(tmp_path, issued.chain[0], issued.chain[-1])
    assert missing.returncode != 0


def test_material_validation() -> None:
    key = ec_key()
    root = generate_root(key, organization=TD)
    with pytest.raises(CaError, match="does not match"):
        SigningMaterial(ec_key(), root, (), (root,))
    other_key = ec_key()
    other_root = generate_root(other_key, organization="other")
    mid = intermediate_for(key, root, ec_key())
    with pytest.raises(CaError, match="does not match"):
        SigningMaterial(key, mid, (), (other_root,))


def test_material_requires_chain_to_a_root() -> None:
    key = ec_key()
    root = generate_root(key, organization=TD)
    mid_key = ec_key()
    mid = intermediate_for(key, root, mid_key)
    unrelated = generate_root(ec_key(), organization="unrelated")
    with pytest.raises(CaError, match="does not chain to any root"):
        SigningMaterial(mid_key, mid, (), (unrelated,))


def test_fingerprint_matches_openssl(ca: CertificateAuthority, tmp_path: Path) -> None:
    path = tmp_path / "root.pem"
    path.write_text(ca.root_pem)
    out = subprocess.run(
        [OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"sha256 Fingerprint={fingerprint(ca.material.cert)}"
    assert ca.root_fingerprint == fingerprint(ca.material.cert)


def test_root_is_a_ten_year_ca(ca: CertificateAuthority) -> None:
    root = ca.material.cert
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3650, hours=2)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_replace_bumps_generation(ca: CertificateAuthority) -> None:
    local = self_signed()
    before = local.root_fingerprint
    other = self_signed().material
    local.replace(other)
    assert local.generation == 1
    assert local.root_fingerprint != before
    issued = local.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    assert issued.root_fingerprint == local.root_fingerprint
