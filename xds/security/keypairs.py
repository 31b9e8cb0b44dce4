"""Keys and certificates we mint and hold ourselves: SDS secrets for waypoints.

A stock Envoy waypoint has no istio-agent to generate a key and send a CSR,
so the control plane generates the key and serves it over ADS as the
``default`` Secret (and the root as ``ROOTCA``). ``WorkloadKeyPairs`` keeps one
key pair per identity, re-issues it at half its lifetime (as ztunnel and
istio-agent rotate) or as soon as the CA changes, and tells its owner when
the next rotation is due.

Whoever serves these must send an identity's key only to a proxy that
authenticated as that identity (the lesson of CVE-2021-34824).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from xds.security.ca import DEFAULT_WORKLOAD_TTL, Clock, utcnow
from xds.security.identity import Identity
from xds.security.signer import Signer


@dataclass(frozen=True)
class KeyPair:
    """What an Envoy ``Secret`` needs, plus when to replace it."""

    identity: Identity
    private_key_pem: bytes
    """PKCS#8 PEM: ``tls_certificate.private_key``."""
    certificate_chain_pem: bytes
    """Leaf then intermediates: ``tls_certificate.certificate_chain``."""
    root_pem: bytes
    """Trust anchors: ``validation_context.trusted_ca`` (the ``ROOTCA`` secret)."""
    not_before: dt.datetime
    not_after: dt.datetime
    refresh_at: dt.datetime
    root_fingerprint: str
    ca_generation: int

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return (
            f"KeyPair({self.identity}, not_after={self.not_after.isoformat()}, "
            f"refresh_at={self.refresh_at.isoformat()})"
        )


class WorkloadKeyPairs:
    def __init__(
        self,
        signer: Signer,
        *,
        ttl: dt.timedelta = DEFAULT_WORKLOAD_TTL,
        refresh_fraction: float = 0.5,
        clock: Clock = utcnow,
    ) -> None:
        if not 0 < refresh_fraction < 1:
            raise ValueError("refresh_fraction must be between 0 and 1")
        self._signer = signer
        self._ttl = ttl
        self._refresh_fraction = refresh_fraction
        self._clock = clock
        self._pairs: dict[Identity, KeyPair] = {}
        self._pending: dict[Identity, asyncio.Future[KeyPair]] = {}

    async def get(self, identity: Identity) -> KeyPair:
        """The current key pair for ``identity``, issuing or rotating it if needed.

        Concurrent callers for one identity share a single issuance.
        """
        pair = self._pairs.get(identity)
        if pair is not None and not self._due(pair):
            return pair
        return await self._issue(identity)

    def cached(self, identity: Identity) -> KeyPair | None:
        return self._pairs.get(identity)

    def forget(self, identity: Identity) -> None:
        """Drop an identity no waypoint needs any more (its key is not kept around)."""
        self._pairs.pop(identity, None)

    def next_refresh_at(self) -> dt.datetime | None:
        """When ``refresh_due`` next has work; ``None`` when nothing is held.

        A CA change makes everything due at once: poll ``refresh_due`` after
        replacing the CA, too.
        """
        return min((p.refresh_at for p in self._pairs.values()), default=None)

    async def refresh_due(self) -> list[KeyPair]:
        """Re-issue every held pair that is due; returns the new ones (to push)."""
        due = [identity for identity, pair in self._pairs.items() if self._due(pair)]
        return list(await asyncio.gather(*(self._issue(identity) for identity in due)))

    def _due(self, pair: KeyPair) -> bool:
        return pair.ca_generation != self._signer.ca.generation or self._clock() >= pair.refresh_at

    async def _issue(self, identity: Identity) -> KeyPair:
        pending = self._pending.get(identity)
        if pending is None:
            pending = asyncio.ensure_future(self._mint(identity))
            self._pending[identity] = pending
            pending.add_done_callback(lambda _: self._pending.pop(identity, None))
        # shield: one caller being cancelled must not cancel the others' issuance.
        return await asyncio.shield(pending)

    async def _mint(self, identity: Identity) -> KeyPair:
        generation = self._signer.ca.generation
        issued_at = self._clock()
        key_pem, issued = await self._signer.issue_key_pair(identity, self._ttl)
        # Measured from issuance, not from the backdated not_before: with a
        # short TTL the backdating would otherwise make a fresh pair due at once.
        lifetime = issued.not_after - issued_at
        pair = KeyPair(
            identity=identity,
            private_key_pem=key_pem,
            certificate_chain_pem=issued.chain_without_root.encode("ascii"),
            root_pem=issued.root_pem.encode("ascii"),
            not_before=issued.not_before,
            not_after=issued.not_after,
            refresh_at=issued_at + lifetime * self._refresh_fraction,
            root_fingerprint=issued.root_fingerprint,
            ca_generation=generation,
        )
        self._pairs[identity] = pair
        return pair
