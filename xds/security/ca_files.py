"""The CA on disk: a directory in istio's ``cacerts`` layout.

Files (the names istiod uses for its plug-in CA secret):

- ``ca-key.pem``    the signing key (mode 0600)
- ``ca-cert.pem``   the signing certificate
- ``root-cert.pem`` the trust anchor(s); what clients use to verify us
- ``cert-chain.pem`` optional: the certificates between ``ca-cert.pem`` and
  the root (plug-in CA). istio's own tooling writes ``ca-cert`` + ``root``
  here, so those two are recognised and skipped.

A self-signed CA has ``ca-cert.pem`` == ``root-cert.pem``. A directory with no
CA files gets a new self-signed root; a directory with any of them is only
ever loaded, so a restart never silently changes the root.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from xds.security.ca import (
    ROOT_TTL,
    CaError,
    CaPrivateKey,
    CertificateAuthority,
    KeyAlgorithm,
    SigningMaterial,
    generate_root,
    key_to_pem,
    to_pem,
)
from xds.security.fileio import PRIVATE, PUBLIC, atomic_write

log = logging.getLogger("xds.ca")

CA_KEY: Final = "ca-key.pem"
CA_CERT: Final = "ca-cert.pem"
ROOT_CERT: Final = "root-cert.pem"
CERT_CHAIN: Final = "cert-chain.pem"
CA_FILES: Final = (CA_KEY, CA_CERT, ROOT_CERT, CERT_CHAIN)


def default_ca_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/xds-ambient/ca``, falling back to ``~/.local/state/...``."""
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "xds-ambient" / "ca"


@dataclass(frozen=True)
class CaDirectory:
    path: Path

    @property
    def root_cert_path(self) -> Path:
        """Root distribution in file mode: clients point ``CA_ROOT_CA``/``XDS_ROOT_CA`` here."""
        return self.path / ROOT_CERT

    def has_material(self) -> bool:
        return any((self.path / name).exists() for name in CA_FILES)

    def load(self) -> SigningMaterial:
        """Load the CA; ``CaError`` names the file and the problem."""
        pems: dict[str, bytes] = {}
        for name in CA_FILES:
            try:
                pems[name] = (self.path / name).read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CaError(f"{self.path / name}: {exc.strerror}") from None
        return material_from_pems(pems, lambda name: str(self.path / name))

    def create(
        self,
        key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        *,
        organization: str,
        root_ttl: dt.timedelta = ROOT_TTL,
        force: bool = False,
    ) -> SigningMaterial:
        """Generate and persist a new self-signed root; refuses to overwrite unless ``force``."""
        if self.has_material() and not force:
            raise CaError(f"{self.path} already holds a CA; use --force to replace its root")
        key = key_algorithm.generate()
        root = generate_root(key, organization=organization, ttl=root_ttl)
        self._write(key, root)
        return SigningMaterial(key, root, (), (root,))

    def load_or_create(
        self, key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256, *, organization: str
    ) -> tuple[SigningMaterial, bool]:
        """The CA for ``xds serve``: load what is there, create only an empty directory.

        Returns the material and whether it was created just now. A self-signed root
        whose ``root-cert.pem`` is missing or empty gets it written
        back: that file is what clients are told to trust.
        """
        if self.path.exists() and not self.path.is_dir():
            raise CaError(
                f"{self.path}: not a directory (the CA directory holds ca-key.pem, "
                "ca-cert.pem and root-cert.pem)"
            )
        if self.has_material():
            material = self.load()
            self._restore_root(material)
            return material, False
        material = self.create(key_algorithm, organization=organization)
        log.info("created a new self-signed root CA", extra={"dir": self.path})
        return material, True

    def _restore_root(self, material: SigningMaterial) -> None:
        root = material.cert
        if root.issuer != root.subject or list(material.roots) != [root]:
            return  # a plug-in CA: its root-cert.pem is the operator's
        pem = to_pem(root).encode("ascii")
        path = self.path / ROOT_CERT
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = b""
        if _parse_certs(current, str(path)) == [root]:
            return
        atomic_write(path, pem, PUBLIC)
        log.warning(
            "root certificate was missing or empty; written again",
            extra={"path": path, "from": self.path / CA_CERT},
        )

    def stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        """A cheap change detector over the CA files (inode, size, mtime)."""
        stamps: list[tuple[int, int, int] | None] = []
        for name in CA_FILES:
            try:
                st = (self.path / name).stat()
            except FileNotFoundError:
                stamps.append(None)
            else:
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    def _write(self, key: CaPrivateKey, root: x509.Certificate) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = to_pem(root).encode("ascii")
        # A stale plug-in chain would no longer match the new key.
        (self.path / CERT_CHAIN).unlink(missing_ok=True)
        atomic_write(self.path / CA_KEY, key_to_pem(key), PRIVATE)
        atomic_write(self.path / CA_CERT, pem, PUBLIC)
        atomic_write(self.path / ROOT_CERT, pem, PUBLIC)


class CaFileWatcher:
    """Reloads a ``CertificateAuthority`` when its directory's files change.

    Call ``poll`` periodically (every few seconds is plenty). A broken update
    (half-copied files, a key that does not match) is logged and ignored: the
    CA keeps signing with what it had.
    """

    def __init__(self, directory: CaDirectory, ca: CertificateAuthority) -> None:
        self._directory = directory
        self._ca = ca
        self._stamp = directory.stamp()

    def poll(self) -> bool:
        """Reload if the files changed; returns True when the CA was replaced."""
        stamp = self._directory.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            material = self._directory.load()
        except CaError as exc:
            log.error(
                "CA files changed but cannot be loaded; keeping the current CA",
                extra={"reason": exc},
            )
            return False
        old = self._ca.root_fingerprint
        self._ca.replace(material)
        log.info(
            "CA reloaded",
            extra={"dir": self._directory.path, "old_root": old, "root": material.root_fingerprint},
        )
        return True


def material_from_pems(pems: Mapping[str, bytes], where: Callable[[str], str]) -> SigningMaterial:
    """The CA from the PEM contents of the cacerts files (``CA_FILES`` names; absent
    ones left out). ``where(name)`` says where a file came from, for errors."""
    key = _parse_key(_required(pems, CA_KEY, where), where(CA_KEY))
    signing, *extra = _parse_certs(_required(pems, CA_CERT, where), where(CA_CERT))
    roots = _parse_certs(pems.get(ROOT_CERT, b""), where(ROOT_CERT))
    if not roots:
        if signing.issuer != signing.subject:
            raise CaError(f"{where(ROOT_CERT)}: missing (needed for a plug-in CA)")
        roots = [signing]
    chain = [*extra, *_parse_certs(pems.get(CERT_CHAIN, b""), where(CERT_CHAIN))]
    intermediates: list[x509.Certificate] = []
    for cert in chain:
        if cert == signing or cert in roots or cert in intermediates:
            continue
        intermediates.append(cert)
    try:
        return SigningMaterial(key, signing, tuple(intermediates), tuple(roots))
    except CaError as exc:
        raise CaError(f"{where('')}: {exc}") from None


def _required(pems: Mapping[str, bytes], name: str, where: Callable[[str], str]) -> bytes:
    data = pems.get(name)
    if data is None:
        raise CaError(f"{where(name)}: missing")
    if not data.strip():
        raise CaError(f"{where(name)}: empty")
    return data


def _parse_key(data: bytes, where: str) -> CaPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CaError(f"{where}: the key is encrypted; an unencrypted PEM key is needed") from None
    except ValueError:
        raise CaError(f"{where}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{where}: unsupported key type {type(key).__name__} (use ECDSA or RSA)")
    return key


def _parse_certs(data: bytes, where: str) -> list[x509.Certificate]:
    if not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CaError(f"{where}: not PEM certificates") from None
