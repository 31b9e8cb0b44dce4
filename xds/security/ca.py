"""The mesh CA: X.509 issuing with ``cryptography``.

``SigningMaterial`` is one immutable snapshot of the CA's key and chain;
``CertificateAuthority`` signs with whichever snapshot is current, so the CA
can be swapped (new plug-in files, ``xds ca init --force``) while requests are
in flight on other threads. Everything here is synchronous and CPU-bound: run
it through ``xds.security.signer.Signer`` from async code.

Leaf certificates follow istiod (``security/pkg/pki/util/generate_cert.go``):
empty subject, one critical SAN, KU/EKU for both TLS ends, CA:FALSE. The SANs
requested in a CSR are never copied: the caller decides the identity.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from xds.security.identity import Identity

CaPrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Clock: TypeAlias = Callable[[], dt.datetime]

DEFAULT_WORKLOAD_TTL: Final = dt.timedelta(hours=24)
MAX_WORKLOAD_TTL: Final = dt.timedelta(days=90)
# A client asking for less gets this much: ztunnel renews at half the lifetime
# counted from not-before, which is backdated, so a 60 s request would renew in
# a tight loop (seen with SECRET_TTL=60s: 576 CSRs in 25 s).
MIN_WORKLOAD_TTL: Final = dt.timedelta(minutes=10)
ROOT_TTL: Final = dt.timedelta(days=3650)
# Leaves are backdated so a peer whose clock lags a little does not reject a
# certificate as not yet valid. Roots are backdated more: every node in the
# mesh trusts them, and some clock is always behind.
LEAF_BACKDATE: Final = dt.timedelta(minutes=1)
ROOT_BACKDATE: Final = dt.timedelta(hours=1)
MAX_CSR_BYTES: Final = 64 * 1024

_CSR_HASHES: Final = frozenset({"sha256", "sha384", "sha512"})
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


class CaError(Exception):
    """The CA's own material is missing, malformed or unusable (message says why)."""


class CaExpiredError(CaError):
    """The signing certificate is no longer valid, so nothing can be issued."""


class CsrError(ValueError):
    """A certificate signing request was rejected (message names the problem)."""


class TtlError(ValueError):
    """A requested certificate lifetime is not acceptable."""


class KeyAlgorithm(Enum):
    """Key types the CA can generate for itself (``--key-algorithm``)."""

    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"
    RSA_4096 = "rsa-4096"

    def generate(self) -> CaPrivateKey:
        if self is KeyAlgorithm.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        size = 2048 if self is KeyAlgorithm.RSA_2048 else 4096
        return rsa.generate_private_key(public_exponent=65537, key_size=size)


def describe_key(key: object) -> str:
    """Human-readable key type, e.g. ``ECDSA P-256`` or ``RSA 2048``."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


_CURVE_NAMES: Final = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def signature_hash(key: CaPrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """The digest paired with a CA key (SHA-256 unless the curve is bigger)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as ``openssl x509 -fingerprint -sha256`` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_to_pem(key: CaPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (what Envoy, ztunnel and openssl all read)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate_root(
    key: CaPrivateKey,
    *,
    organization: str,
    ttl: dt.timedelta = ROOT_TTL,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed root for ``key``: CA:TRUE, keyCertSign|cRLSign."""
    now = now or dt.datetime.now(dt.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, "xds-ambient root CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_random_serial())
        .not_valid_before(now - ROOT_BACKDATE)
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, signature_hash(key))
    )


@dataclass(frozen=True, eq=False)
class SigningMaterial:
    """What the CA signs with: key, its certificate, the chain up to the roots.

    For a self-signed CA ``cert`` is itself the only root and ``intermediates``
    is empty. For a plug-in CA ``cert`` is the intermediate from ``ca-cert.pem``
    and ``intermediates`` are the certificates between it and a root.
    """

    key: CaPrivateKey
    cert: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        _validate_material(self)

    @property
    def self_signed(self) -> bool:
        return self.cert in self.roots

    @cached_property
    def chain_pems(self) -> tuple[str, ...]:
        """Certificates between a leaf and the root, one PEM per element.

        ztunnel reads only the first PEM block of each middle element, so every
        intermediate must travel on its own.
        """
        above_leaf = () if self.self_signed else (self.cert, *self.intermediates)
        return tuple(to_pem(c) for c in above_leaf)

    @cached_property
    def root_pem(self) -> str:
        """All trust anchors, concatenated (ztunnel adds every one as a root)."""
        return "".join(to_pem(c) for c in self.roots)

    @cached_property
    def not_after(self) -> dt.datetime:
        """No leaf may outlive any certificate of the chain above it."""
        chain = (self.cert, *self.intermediates, self._issuing_root)
        return min(c.not_valid_after_utc for c in chain)

    @cached_property
    def _issuing_root(self) -> x509.Certificate:
        top = self.intermediates[-1] if self.intermediates else self.cert
        return next(r for r in self.roots if _issued_by(top, r))

    @cached_property
    def root_fingerprint(self) -> str:
        """Fingerprint of the root this CA's chain ends in."""
        return fingerprint(self._issuing_root)

    @cached_property
    def signature_hash(self) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
        return signature_hash(self.key)

    @cached_property
    def authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly signed leaf and the chain to hand out with it."""

    certificate: x509.Certificate
    chain: tuple[str, ...]
    """``[leaf, *intermediates, root bundle]``: the CreateCertificate response."""
    root_fingerprint: str

    @property
    def leaf_pem(self) -> str:
        return self.chain[0]

    @property
    def chain_without_root(self) -> str:
        """Leaf and intermediates, concatenated: what a TLS endpoint presents."""
        return "".join(self.chain[:-1])

    @property
    def root_pem(self) -> str:
        return self.chain[-1]

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc


@dataclass
class CertificateAuthority:
    """Issues workload and serving certificates from the current ``SigningMaterial``.

    ``replace`` swaps the material atomically (a single attribute store), so
    issuing threads see either the old or the new CA, never a mix; each
    ``IssuedCertificate`` records which root it chains to.
    """

    material: SigningMaterial
    default_ttl: dt.timedelta = DEFAULT_WORKLOAD_TTL
    max_ttl: dt.timedelta = MAX_WORKLOAD_TTL
    clock: Clock = utcnow
    generation: int = 0
    """Bumped on every ``replace``; cheap to poll for "did the root change"."""

    def replace(self, material: SigningMaterial) -> None:
        self.material = material
        self.generation += 1

    @property
    def root_pem(self) -> str:
        return self.material.root_pem

    @property
    def root_fingerprint(self) -> str:
        return self.material.root_fingerprint

    def resolve_ttl(self, requested_seconds: int) -> dt.timedelta:
        """istiod's rule: non-positive means the default; above the maximum is an error.

        Unlike istiod, a request below ``MIN_WORKLOAD_TTL`` is raised to it."""
        if requested_seconds <= 0:
            return self.default_ttl
        max_seconds = int(self.max_ttl.total_seconds())
        if requested_seconds > max_seconds:
            raise TtlError(
                f"requested validity {requested_seconds}s exceeds the maximum of {max_seconds}s"
            )
        return max(dt.timedelta(seconds=requested_seconds), MIN_WORKLOAD_TTL)

    def sign_csr(
        self, csr_pem: str | bytes, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        """Validate a CSR and issue a leaf for ``identity`` with the CSR's public key.

        Raises ``CsrError`` for a bad CSR and ``CaExpiredError`` if the CA expired.
        """
        public_key = parse_csr(csr_pem).public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return self.issue_for_identity(public_key, identity, ttl)

    def issue_for_identity(
        self, public_key: LeafPublicKey, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        return self._issue(public_key, [x509.UniformResourceIdentifier(identity.uri)], ttl)

    def issue_for_hosts(
        self, public_key: LeafPublicKey, names: Sequence[x509.GeneralName], ttl: dt.timedelta
    ) -> IssuedCertificate:
        """A serving certificate: DNS/IP SANs instead of a SPIFFE identity."""
        if not names:
            raise ValueError("a serving certificate needs at least one name")
        return self._issue(public_key, list(names), ttl)

    def _issue(
        self, public_key: LeafPublicKey, sans: list[x509.GeneralName], ttl: dt.timedelta
    ) -> IssuedCertificate:
        material = self.material  # one snapshot for the whole issuance
        now = self.clock()
        if material.not_after <= now:
            raise CaExpiredError(
                f"the CA certificate chain expired at {material.not_after.isoformat()}"
            )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(material.cert.subject)
            .public_key(public_key)
            .serial_number(_random_serial())
            .not_valid_before(now - LEAF_BACKDATE)
            .not_valid_after(min(now + ttl, material.not_after))
            # RFC 5280 4.2.1.6: with an empty subject the SAN must be critical.
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .add_extension(_leaf_key_usage(public_key), critical=True)
            .add_extension(_LEAF_EKU, critical=False)
            .add_extension(_LEAF_BASIC_CONSTRAINTS, critical=True)
            .add_extension(material.authority_key_id, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        cert = builder.sign(material.key, material.signature_hash)
        return IssuedCertificate(
            certificate=cert,
            chain=(to_pem(cert), *material.chain_pems, material.root_pem),
            root_fingerprint=material.root_fingerprint,
        )


LeafPublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_LEAF_EKU: Final = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)
_LEAF_BASIC_CONSTRAINTS: Final = x509.BasicConstraints(ca=False, path_length=None)
_ACCEPTED_CURVES: Final = frozenset({"secp256r1", "secp384r1"})
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 8192


def parse_csr(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse and check a PEM CSR; every rejection is a ``CsrError`` naming the problem."""
    data = csr_pem.encode("ascii", "replace") if isinstance(csr_pem, str) else csr_pem
    if not data.strip():
        raise CsrError("csr is empty")
    if len(data) > MAX_CSR_BYTES:
        raise CsrError(f"csr is larger than {MAX_CSR_BYTES} bytes")
    label = _PEM_LABEL.search(data.decode("ascii", "replace"))
    if label is None:
        raise CsrError("csr is not PEM: no '-----BEGIN CERTIFICATE REQUEST-----' block")
    if label.group(1) not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
        raise CsrError(f"csr is a PEM {label.group(1)}, expected a CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise CsrError(f"csr could not be parsed as PKCS#10: {exc}") from None
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CsrError("csr public key could not be parsed") from None
    _check_public_key(public_key)
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        raise CsrError("csr is signed with an unsupported algorithm") from None
    if algorithm is None or algorithm.name not in _CSR_HASHES:
        name = algorithm.name if algorithm else "none"
        raise CsrError(f"csr is signed with {name}; use sha256, sha384 or sha512")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CsrError("csr signature does not verify with its own public key")
    return csr


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _ACCEPTED_CURVES:
            raise CsrError(
                f"csr key is ECDSA on {key.curve.name}; only P-256 and P-384 are accepted"
            )
        return
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise CsrError(
                f"csr key is RSA {key.key_size}; RSA keys must have "
                f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
            )
        return
    raise CsrError(
        f"csr key type {describe_key(key)} is not supported; use ECDSA P-256/P-384 or RSA"
    )


def _leaf_key_usage(public_key: LeafPublicKey) -> x509.KeyUsage:
    # keyEncipherment only means something for RSA keys (TLS 1.2 RSA key
    # transport); on an EC key it is meaningless, so it is set for RSA only.
    return _RSA_LEAF_KU if isinstance(public_key, rsa.RSAPublicKey) else _EC_LEAF_KU


def _key_usage(*, digital_signature: bool, key_encipherment: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


_EC_LEAF_KU: Final = _key_usage(digital_signature=True, key_encipherment=False, ca=False)
_RSA_LEAF_KU: Final = _key_usage(digital_signature=True, key_encipherment=True, ca=False)


def _ca_key_usage() -> x509.KeyUsage:
    return _key_usage(digital_signature=False, key_encipherment=False, ca=True)


def _random_serial() -> int:
    # 128 random bits (RFC 5280 allows up to 20 octets); never zero.
    return int.from_bytes(os.urandom(16), "big") | 1


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _validate_material(m: SigningMaterial) -> None:
    """Refuse CA material that would issue chains nobody can verify."""
    if not isinstance(m.key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"CA key type {describe_key(m.key)} is not supported (use ECDSA or RSA)")
    if m.key.public_key() != m.cert.public_key():
        raise CaError("the CA key does not match the CA certificate")
    if not m.roots:
        raise CaError("no root certificate")
    for cert in (m.cert, *m.intermediates, *m.roots):
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise CaError(f"certificate {cert.subject.rfc4514_string()!r} is not a CA (CA:TRUE)")
    chain = (m.cert, *m.intermediates)
    for child, parent in itertools.pairwise(chain):
        if not _issued_by(child, parent):
            raise CaError(
                f"certificate {child.subject.rfc4514_string()!r} is not issued by "
                f"{parent.subject.rfc4514_string()!r}: the chain is out of order or incomplete"
            )
    if not any(_issued_by(chain[-1], root) for root in m.roots):
        raise CaError(
            f"certificate {chain[-1].subject.rfc4514_string()!r} does not chain to any root "
            "certificate"
        )


def requested_identity(csr: x509.CertificateSigningRequest) -> Identity | None:
    """The SPIFFE identity a CSR asks for, if it names exactly one.

    Only used for anonymous callers in insecure dev mode; everyone else gets
    the identity they authenticated as, whatever the CSR says.
    """
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)]
    spiffe = [u for u in uris if u.startswith("spiffe://")]
    if len(spiffe) != 1:
        return None
    try:
        return Identity.parse(spiffe[0])
    except ValueError:
        return None
