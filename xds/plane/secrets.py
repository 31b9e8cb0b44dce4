"""Keeps the SDS secrets of connected waypoints published and rotated.

Each waypoint identity gets its own scope (``identity/<ns>/<sa>``) holding
``default`` and ``ROOTCA``; only streams authenticated as that identity read
from it. Key pairs live while at least one such stream is connected, are
re-issued at half their lifetime or when the CA changes, and the new secrets
are pushed like any other change.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter

from xds.resources import ResourceWriter
from xds.security.identity import Identity
from xds.security.keypairs import KeyPair, WorkloadKeyPairs
from xds.translate.secrets import workload_secrets
from xds.type_urls import SECRET

log = logging.getLogger("xds.sds")


def identity_scope(identity: Identity) -> str:
    return f"identity/{identity.namespace}/{identity.service_account}"


class SecretPublisher:
    def __init__(self, key_pairs: WorkloadKeyPairs, store: ResourceWriter) -> None:
        self._key_pairs = key_pairs
        self._store = store
        self._holders: Counter[Identity] = Counter()
        self._wake = asyncio.Event()

    async def acquire(self, identity: Identity) -> str:
        """Make sure ``identity``'s secrets are published; returns their scope.

        Pair every call with ``release``."""
        self._holders[identity] += 1
        try:
            pair = await self._key_pairs.get(identity)
        except BaseException:
            self.release(identity)
            raise
        self._publish(pair)
        self._wake.set()  # the next rotation may now be sooner
        return identity_scope(identity)

    def release(self, identity: Identity) -> None:
        self._holders[identity] -= 1
        if self._holders[identity] > 0:
            return
        del self._holders[identity]
        self._key_pairs.forget(identity)
        # Private keys are not kept once no proxy of that identity is connected.
        self._store.drop_scope(identity_scope(identity))
        self._store.commit()

    def ca_changed(self) -> None:
        """Every key pair chains to the old CA now: rotate them all."""
        self._wake.set()

    async def run(self) -> None:
        """Rotate due key pairs until cancelled."""
        while True:
            # At most one rotation round per second, whatever the TTLs.
            delay = self._seconds_until_next()
            await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), None if delay is None else max(0.0, delay - 1.0)
                )
            self._wake.clear()
            try:
                pairs = await self._key_pairs.refresh_due()
            except Exception:
                log.exception("rotating waypoint certificates failed; retrying in 10 s")
                await asyncio.sleep(10)
                continue
            for pair in pairs:
                if pair.identity in self._holders:
                    self._publish(pair)
                    log.info(
                        "rotated",
                        extra={
                            "identity": pair.identity.uri,
                            "not_after": pair.not_after.isoformat(),
                        },
                    )

    def _seconds_until_next(self) -> float | None:
        due = self._key_pairs.next_refresh_at()
        if due is None:
            return None
        return max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds())

    def _publish(self, pair: KeyPair) -> None:
        scope = identity_scope(pair.identity)
        self._store.replace(
            scope,
            SECRET,
            workload_secrets(pair.certificate_chain_pem, pair.private_key_pem, pair.root_pem),
        )
        self._store.commit()
