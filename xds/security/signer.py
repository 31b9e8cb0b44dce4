"""CA work off the event loop.

Parsing a CSR, generating a key and signing a certificate take 0.1-5 ms of
CPU each (more with an RSA-4096 CA). Done on the event loop, a reconnect storm
of CSRs would stall every xDS stream. ``Signer`` runs that work on a small
thread pool. ``cryptography`` holds the GIL while signing, so more threads do
not add throughput; they only keep the loop responsive between jobs, which is
why the pool is small by default.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from xds.security.ca import CertificateAuthority, IssuedCertificate, key_to_pem
from xds.security.identity import Identity

DEFAULT_WORKERS: Final = 2


class Signer:
    """Async front of a ``CertificateAuthority``; owns its thread pool."""

    def __init__(self, ca: CertificateAuthority, *, workers: int = DEFAULT_WORKERS) -> None:
        self.ca = ca
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ca-sign")

    async def sign_csr(
        self, csr_pem: str | bytes, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        """``CertificateAuthority.sign_csr`` on the pool (raises ``CsrError`` etc. alike)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self.ca.sign_csr, csr_pem, identity, ttl
        )

    async def issue_key_pair(
        self, identity: Identity, ttl: dt.timedelta
    ) -> tuple[bytes, IssuedCertificate]:
        """A new P-256 key and a certificate for it: ``(PKCS#8 key PEM, certificate)``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._issue_key_pair, identity, ttl)

    def _issue_key_pair(
        self, identity: Identity, ttl: dt.timedelta
    ) -> tuple[bytes, IssuedCertificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self.ca.issue_for_identity(key.public_key(), identity, ttl)
        return key_to_pem(key), issued

    def close(self) -> None:
        """Stops the pool after queued work finishes; call once the servers are stopped."""
        self._executor.shutdown(wait=False, cancel_futures=True)
