"""The TLS port's own certificate, minted from our CA and rotated in place.

Clients verify us against the mesh root (``root-cert.pem``) and the name they
dialled, by default ``istiod.istio-system.svc``; so the serving certificate
carries istiod's DNS names (``getDNSNames`` in istiod) plus any extra hosts.

Rotation without a restart uses ``grpc.dynamic_ssl_server_credentials``:
gRPC calls our fetcher before every TLS handshake, and the fetcher returns a
new certificate configuration when the current one has passed half its life
or when the CA has changed (a new root must be answered by a certificate that
chains to it). Established connections keep the certificate they started with.

TLS versions: grpcio exposes no setting for the server's TLS versions.
gRPC core's SSL server credentials accept TLS 1.2 and 1.3 and prefer 1.3;
ztunnel offers only 1.3 (unless ``TLS12_ENABLED``), so it always gets 1.3.
Refusing 1.2 outright is not possible from Python without replacing grpcio's
TLS stack. ALPN is ``h2``, set by gRPC core.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Final

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from xds.security.ca import CertificateAuthority, Clock, IssuedCertificate, key_to_pem, utcnow

log = logging.getLogger("xds.ca")

DEFAULT_NAMESPACE: Final = "istio-system"
SERVING_TTL: Final = dt.timedelta(hours=24)
_DNS_NAME = re.compile(
    r"(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*"
)


def istiod_dns_names(
    namespace: str = DEFAULT_NAMESPACE, revision: str = "", extra: Iterable[str] = ()
) -> list[str]:
    """The names istiod's serving certificate carries, then ``extra``, without duplicates."""
    names = [
        f"istiod.{namespace}.svc",
        f"istiod-remote.{namespace}.svc",
        f"istio-pilot.{namespace}.svc",
    ]
    if revision and revision != "default":
        names.append(f"istiod-{revision}.{namespace}.svc")
    names.extend(h.strip().lower() for h in extra if h.strip())
    return list(dict.fromkeys(names))


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses as SAN entries; ``ValueError`` names a bad host."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if len(host) > 253 or not _DNS_NAME.fullmatch(host):
            raise ValueError(f"{host!r} is neither an IP address nor a DNS name")
        sans.append(x509.DNSName(host))
    return sans


class ServingCertificate:
    """Owns the serving key and certificate; hands grpc a self-rotating credential."""

    def __init__(
        self,
        ca: CertificateAuthority,
        hosts: Sequence[str],
        *,
        ttl: dt.timedelta = SERVING_TTL,
        refresh_fraction: float = 0.5,
        clock: Clock = utcnow,
    ) -> None:
        self._ca = ca
        self._sans = subject_alt_names(hosts)
        if not self._sans:
            raise ValueError("the serving certificate needs at least one host name")
        self._ttl = ttl
        self._refresh_fraction = refresh_fraction
        self._clock = clock
        # gRPC calls the fetcher from its own threads, possibly concurrently.
        self._lock = threading.Lock()
        self._key_pem, self._issued, self._generation = self._mint()
        self._refresh_at = self._compute_refresh_at(self._issued)

    @property
    def certificate(self) -> IssuedCertificate:
        """The certificate new handshakes get (leaf, intermediates, root)."""
        return self._issued

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``server.add_secure_port``; no client certificates are requested.

        Callers prove who they are with bearer tokens (as ztunnel and
        istio-agent do), checked per call by an ``Authenticator``.
        """
        initial = self._configuration()
        return grpc.dynamic_ssl_server_credentials(
            initial, self._fetch, require_client_authentication=False
        )

    def _fetch(self) -> Any:
        """gRPC's per-handshake hook: a new configuration, or ``None`` to keep the current."""
        try:
            with self._lock:
                if not self._stale():
                    return None
                self._key_pem, self._issued, self._generation = self._mint()
                self._refresh_at = self._compute_refresh_at(self._issued)
                log.info(
                    "serving certificate renewed",
                    extra={
                        "root": self._issued.root_fingerprint,
                        "not_after": self._issued.not_after.isoformat(),
                    },
                )
                return self._configuration()
        except Exception:
            # An exception escaping into gRPC's handshake would fail the
            # connection; serving the old certificate a little longer is better.
            log.exception("serving certificate renewal failed; keeping the current one")
            return None

    def _stale(self) -> bool:
        return self._generation != self._ca.generation or self._clock() >= self._refresh_at

    def _mint(self) -> tuple[bytes, IssuedCertificate, int]:
        generation = self._ca.generation
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._ca.issue_for_hosts(key.public_key(), self._sans, self._ttl)
        return key_to_pem(key), issued, generation

    def _compute_refresh_at(self, issued: IssuedCertificate) -> dt.datetime:
        return issued.not_before + (issued.not_after - issued.not_before) * self._refresh_fraction

    def _configuration(self) -> Any:
        chain = self._issued.chain_without_root.encode("ascii")
        return grpc.ssl_server_certificate_configuration([(self._key_pem, chain)])
