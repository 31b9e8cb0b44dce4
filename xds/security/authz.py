"""Which identity a caller may get a certificate for (istiod's CA rules).

1. By default: the caller's own identity. SANs in the CSR are ignored, so a
   stolen token yields that token's identity and nothing more.
2. ``ImpersonatedIdentity`` (ztunnel in shared mode, asking on behalf of the
   pods on its node) is honoured only when the caller is a trusted node
   account (default ``istio-system/ztunnel``) *and* a pod with that identity
   runs on the caller's node.

Refusals raise ``PermissionDeniedError`` with a message that says why; the
serving layer maps it to ``PERMISSION_DENIED``. (istiod answers with an opaque
``Unauthenticated`` and keeps the reason in its log; we tell the caller, who
is authenticated by then.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from xds.security.authn import Caller
from xds.security.identity import Identity, InvalidIdentity

DEFAULT_TRUSTED_NODE_ACCOUNTS: Final = frozenset({"istio-system/ztunnel"})


class PermissionDeniedError(Exception):
    """An authenticated caller asked for something it may not have."""


class PodLocator(Protocol):
    """The mesh model's answer to "does a pod with this identity run on this node?".

    Implementations should count only pods that are not terminated, as
    istiod skips Failed pods.
    """

    def has_pod(self, identity: Identity, node: str) -> bool: ...


@dataclass(frozen=True)
class CertificateAuthorizer:
    trust_domain: str
    trusted_node_accounts: frozenset[str] = DEFAULT_TRUSTED_NODE_ACCOUNTS
    """``<namespace>/<service account>`` of node agents that may impersonate."""
    pods: PodLocator | None = field(default=None)
    """Without a pod inventory, impersonation is always refused."""

    @classmethod
    def with_accounts(
        cls, trust_domain: str, accounts: Iterable[str], pods: PodLocator | None = None
    ) -> CertificateAuthorizer:
        return cls(trust_domain, frozenset(a.strip() for a in accounts if a.strip()), pods)

    def identity_for(
        self,
        caller: Caller,
        impersonated: str | None,
        csr_identity: Identity | None = None,
    ) -> Identity:
        """The identity to put in the certificate, or ``PermissionDeniedError``.

        ``impersonated`` is the raw ``ImpersonatedIdentity`` request metadata.
        ``csr_identity`` (the SPIFFE URI the CSR asks for) is consulted only for
        anonymous callers, which exist only in insecure dev mode.
        """
        if caller.identity is None:
            return self._anonymous(impersonated, csr_identity)
        if not impersonated:
            return caller.identity
        target = self._parse_own_domain(impersonated)
        if target == caller.identity:
            return target
        account = caller.identity.account
        if account not in self.trusted_node_accounts:
            raise PermissionDeniedError(
                f"{caller.identity} may not request certificates for other identities: "
                f"{account} is not a trusted node account"
            )
        if caller.node is None:
            raise PermissionDeniedError(
                f"cannot check impersonation of {target}: the caller's credential is not "
                "bound to a node"
            )
        if self.pods is None:
            raise PermissionDeniedError("impersonation is not available: no pod inventory")
        if not self.pods.has_pod(target, caller.node):
            raise PermissionDeniedError(
                f"no pod with identity {target} runs on node {caller.node!r}"
            )
        return target

    def _anonymous(self, impersonated: str | None, csr_identity: Identity | None) -> Identity:
        if impersonated:
            return self._parse_own_domain(impersonated)
        if csr_identity is None:
            raise PermissionDeniedError(
                "anonymous callers must name their identity: the CSR needs one spiffe:// URI SAN"
            )
        if csr_identity.trust_domain != self.trust_domain:
            raise PermissionDeniedError(
                f"{csr_identity} is outside trust domain {self.trust_domain!r}"
            )
        return csr_identity

    def _parse_own_domain(self, uri: str) -> Identity:
        try:
            target = Identity.parse(uri)
        except InvalidIdentity as exc:
            raise PermissionDeniedError(f"ImpersonatedIdentity is not usable: {exc}") from None
        if target.trust_domain != self.trust_domain:
            raise PermissionDeniedError(
                f"ImpersonatedIdentity {target} is outside trust domain {self.trust_domain!r}"
            )
        return target


def authorize_proxy(caller: Caller, namespace: str, service_account: str) -> None:
    """istiod's xDS identity check (``PILOT_ENABLE_XDS_IDENTITY_CHECK``).

    A proxy declares its namespace and service account in its node metadata;
    the authenticated caller must be that identity, so one workload cannot
    fetch another's config (or, over SDS, its keys). An empty declaration
    matches anything, as in istiod. Anonymous dev-mode callers pass.
    """
    identity = caller.identity
    if identity is None:
        return
    if (namespace and namespace != identity.namespace) or (
        service_account and service_account != identity.service_account
    ):
        raise PermissionDeniedError(
            f"authorization failed: {identity} may not connect as a proxy of "
            f"{namespace or '*'}/{service_account or '*'}"
        )
