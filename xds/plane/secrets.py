"""Keeps the SDS secrets of connected waypoints published and rotated.

Each waypoint identity gets its own scope (``identity/<ns>/<sa>``) holding
``default`` and ``ROOTCA``; only streams authenticated as that identity read
from it. Key pairs live while at least one such stream is connected, are
re-issued at half their lifetime or when the CA changes, and the new secrets
are pushed like any other change.

The scope also holds the TLS credentials (DestinationRule ``credentialName``) made
from the Secrets of the identity's own namespace, as istiod serves them: CA bundles
(``kubernetes://<name>-cacert``) to any proxy of that namespace, certificates and
private keys (``kubernetes://<name>``) only to identities allowed to read its Secrets
(``KeyAccess``: in a cluster, RBAC asked through a SubjectAccessReview). A Secret of
another namespace is never served. They are rebuilt when a Secret of the namespace
changes, and dropped with the scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable

from xds.model.core import Secret
from xds.resources import Resource, ResourceWriter
from xds.security.identity import Identity
from xds.security.keypairs import KeyPair, WorkloadKeyPairs
from xds.translate.secrets import CredentialProblem, credential_secrets, workload_secrets
from xds.type_urls import SECRET

log = logging.getLogger("xds.sds")

NamespaceSecrets = Callable[[str], Collection[Secret]]
"""The Secrets of one namespace (the mesh store's)."""
KeyAccess = Callable[[Identity], Awaitable[bool]]
"""Whether proxies of an identity may read the private keys of their namespace's Secrets."""


async def keys_readable_in_own_namespace(identity: Identity) -> bool:
    """File mode: whoever wrote the config directory decided which Secrets exist, and
    there is no RBAC to ask; a proxy still only gets Secrets of its own namespace."""
    return True


def identity_scope(identity: Identity) -> str:
    return f"identity/{identity.namespace}/{identity.service_account}"


class SecretPublisher:
    def __init__(
        self,
        key_pairs: WorkloadKeyPairs,
        store: ResourceWriter,
        secrets_in: NamespaceSecrets | None = None,
        may_read_keys: KeyAccess = keys_readable_in_own_namespace,
    ) -> None:
        self._key_pairs = key_pairs
        self._store = store
        self._secrets_in = secrets_in
        self._may_read_keys = may_read_keys
        self._holders: Counter[Identity] = Counter()
        self._credentials: dict[Identity, list[Resource]] = {}
        self._reported: set[tuple[str, CredentialProblem]] = set()
        self._refreshes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def acquire(self, identity: Identity) -> str:
        """Make sure ``identity``'s secrets are published; returns their scope.

        Pair every call with ``release``."""
        self._holders[identity] += 1
        try:
            pair = await self._key_pairs.get(identity)
            self._credentials[identity] = await self._credential_resources(identity)
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
        self._credentials.pop(identity, None)
        self._key_pairs.forget(identity)
        # Private keys are not kept once no proxy of that identity is connected.
        self._store.drop_scope(identity_scope(identity))
        self._store.commit()

    def ca_changed(self) -> None:
        """Every key pair chains to the old CA now: rotate them all."""
        self._wake.set()

    def secrets_changed(self, namespaces: Iterable[str]) -> None:
        """Secrets of ``namespaces`` changed: republish the credentials of the identities
        held there (in the background: asking RBAC may take a round trip)."""
        changed = set(namespaces)
        affected = {i for i in self._holders if i.namespace in changed}
        if not affected:
            return
        task = asyncio.create_task(self._refresh(affected), name="sds-credentials")
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(self, identities: set[Identity]) -> None:
        for identity in identities:
            try:
                resources = await self._credential_resources(identity)
                pair = await self._key_pairs.get(identity)
            except Exception:
                log.exception("republishing credentials failed", extra={"identity": identity.uri})
                continue
            if identity in self._holders:  # it may have gone meanwhile
                self._credentials[identity] = resources
                self._publish(pair)

    async def _credential_resources(self, identity: Identity) -> list[Resource]:
        secrets = self._secrets_in(identity.namespace) if self._secrets_in is not None else ()
        if not secrets:
            return []
        try:
            with_keys = await self._may_read_keys(identity)
        except Exception as error:
            # Fail closed: CA bundles only, as for an identity without the RBAC.
            log.warning(
                "cannot tell whether the identity may read Secrets; serving CA bundles only",
                extra={"identity": identity.uri, "reason": f"{type(error).__name__}: {error}"},
            )
            with_keys = False
        resources, problems = credential_secrets(secrets, with_keys=with_keys)
        for problem in problems:
            if (identity.namespace, problem) not in self._reported:
                self._reported.add((identity.namespace, problem))
                log.warning(
                    "Secret is not a usable TLS credential",
                    extra={
                        "secret": f"{identity.namespace}/{problem.secret}",
                        "reason": problem.reason,
                    },
                )
        return resources

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
            [
                *workload_secrets(pair.certificate_chain_pem, pair.private_key_pem, pair.root_pem),
                *self._credentials.get(pair.identity, ()),
            ],
        )
        self._store.commit()
