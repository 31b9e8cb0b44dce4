"""Who is calling: gRPC metadata -> ``Caller``.

Every call on the TLS port (ADS streams and CreateCertificate alike) goes
through an ``Authenticator``. Failures raise ``AuthenticationError`` whose
message is safe to send back (it never contains the token); the serving layer
maps it to ``UNAUTHENTICATED``.

Identity comes only from a credential: never from the peer address, never
from a header a client can simply set (CVE-2022-39388 was a localhost check).

Implementations:

- ``TokensFileAuthenticator``: file mode, opaque tokens from a tokens file.
- ``KubeTokenAuthenticator``: Kubernetes mode, a JWT checked by a
  ``TokenReviewer`` (the TokenReview API call is supplied by the Kubernetes
  source), with a TTL cache.
- ``InsecureDevAuthenticator``: accepts anyone; only behind an explicit flag.
- ``FirstOf``: tries several in order, like istiod's authenticator list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from cachetools import TTLCache

from xds.security.ca import Clock, utcnow
from xds.security.identity import Identity, InvalidIdentity
from xds.security.tokens import TokensFile

log = logging.getLogger("xds.authn")

Metadata: TypeAlias = Sequence[tuple[str, str | bytes]]

AUTHORIZATION_HEADER: Final = "authorization"
CLUSTER_ID_HEADER: Final = "clusterid"
DEFAULT_CLUSTER_ID: Final = "Kubernetes"
TOKEN_AUDIENCE: Final = "istio-ca"
_MAX_TOKEN_LENGTH: Final = 16 * 1024


class AuthenticationError(Exception):
    """The caller did not prove an identity. ``str()`` is safe to return to the caller."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller (or, in insecure dev mode only, an anonymous one)."""

    identity: Identity | None
    """``None`` only for anonymous callers admitted by ``InsecureDevAuthenticator``."""
    authenticator: str
    """Which authenticator vouched for the caller (for logs and debug output)."""
    node: str | None = None
    """The node the credential is bound to, if any; needed for impersonation."""
    pod_name: str | None = None
    cluster_id: str = DEFAULT_CLUSTER_ID

    @property
    def anonymous(self) -> bool:
        return self.identity is None

    def __str__(self) -> str:
        who = self.identity.uri if self.identity else "anonymous"
        return f"{who} (via {self.authenticator})"


class Authenticator(Protocol):
    """Turns the metadata of one call into a ``Caller`` or raises ``AuthenticationError``.

    ``peer`` is grpc's peer string (``ipv4:10.0.0.1:5000``) for logging only;
    it must never decide an identity.
    """

    async def authenticate(self, metadata: Metadata, peer: str) -> Caller: ...


def header(metadata: Metadata, name: str) -> str | None:
    """The first value of ``name`` (keys are lowercase in gRPC), decoded."""
    for key, value in metadata:
        if key == name:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return None


def bearer_token(metadata: Metadata) -> str:
    """The token from ``authorization: Bearer <token>``; ``AuthenticationError`` otherwise."""
    value = header(metadata, AUTHORIZATION_HEADER)
    if value is None:
        raise AuthenticationError("no credentials: send the header 'authorization: Bearer <token>'")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("the authorization header is not a Bearer token")
    token = token.strip()
    if not token:
        raise AuthenticationError("the Bearer token is empty")
    if len(token) > _MAX_TOKEN_LENGTH:
        raise AuthenticationError("the Bearer token is too long")
    return token


def cluster_id(metadata: Metadata) -> str:
    return header(metadata, CLUSTER_ID_HEADER) or DEFAULT_CLUSTER_ID


class TokensFileAuthenticator:
    """File mode: the bearer token must be listed in the tokens file and not expired."""

    name: Final = "tokens-file"

    def __init__(self, tokens: TokensFile, clock: Clock = utcnow) -> None:
        self.tokens = tokens
        self._clock = clock

    async def authenticate(self, metadata: Metadata, peer: str) -> Caller:
        token = bearer_token(metadata)
        # A stat() and, rarely, a re-read of a small file: cheap enough to do
        # inline rather than hop to a thread for every call.
        grant = self.tokens.lookup(token)
        if grant is None:
            raise AuthenticationError(f"the Bearer token is not known to {self.tokens.path.name}")
        if grant.expires is not None and grant.expires <= self._clock():
            raise AuthenticationError(
                f"the Bearer token for {grant.identity.account} expired at "
                f"{grant.expires.isoformat()}"
            )
        return Caller(
            identity=grant.identity,
            authenticator=self.name,
            node=grant.node,
            cluster_id=cluster_id(metadata),
        )


@dataclass(frozen=True, slots=True)
class ReviewedToken:
    """What a Kubernetes TokenReview says about a token."""

    namespace: str
    service_account: str
    pod_name: str | None = None
    """From ``authentication.kubernetes.io/pod-name`` of a bound token."""
    pod_uid: str | None = None
    node: str | None = None
    """The pod's node, when the reviewer can resolve it (needed for impersonation)."""


class TokenReviewer(Protocol):
    """Asks a cluster's API server about a token (``authentication.k8s.io/v1`` TokenReview).

    Must raise ``AuthenticationError`` when the token is not authenticated, not
    for ``audiences``, or not a service account token (istiod requires group
    ``system:serviceaccounts`` and user ``system:serviceaccount:<ns>:<sa>``).
    """

    async def review(self, token: str, audiences: Sequence[str], cluster_id: str) -> ReviewedToken:
        """``cluster_id`` is the ``clusterid`` header, ``""`` when not sent."""
        ...


class KubeTokenAuthenticator:
    """Kubernetes mode: a projected service-account JWT, checked via TokenReview.

    Successful reviews are cached (keyed by the token's digest and the
    cluster) for ``cache_ttl`` so that a reconnect storm does not become a
    TokenReview storm; failures are not cached, so a fixed token works at once.
    """

    name: Final = "kube-jwt"

    def __init__(
        self,
        reviewer: TokenReviewer,
        *,
        trust_domain: str,
        audiences: Sequence[str] = (TOKEN_AUDIENCE,),
        cache_ttl: dt.timedelta = dt.timedelta(minutes=1),
        cache_size: int = 10_000,
    ) -> None:
        self._reviewer = reviewer
        self._trust_domain = trust_domain
        self._audiences = tuple(audiences)
        self._cache: TTLCache[tuple[bytes, str], ReviewedToken] = TTLCache(
            maxsize=cache_size, ttl=cache_ttl.total_seconds()
        )

    async def authenticate(self, metadata: Metadata, peer: str) -> Caller:
        token = bearer_token(metadata)
        # The reviewer sees the header as sent: "not sent" means "this cluster".
        claimed = header(metadata, CLUSTER_ID_HEADER) or ""
        key = (hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest(), claimed)
        reviewed = self._cache.get(key)
        if reviewed is None:
            reviewed = await self._reviewer.review(token, self._audiences, claimed)
            self._cache[key] = reviewed
        try:
            identity = Identity(self._trust_domain, reviewed.namespace, reviewed.service_account)
        except InvalidIdentity as exc:
            raise AuthenticationError(f"the token's service account is not usable: {exc}") from None
        return Caller(
            identity=identity,
            authenticator=self.name,
            node=reviewed.node,
            pod_name=reviewed.pod_name,
            cluster_id=claimed or DEFAULT_CLUSTER_ID,
        )


class FirstOf:
    """Tries authenticators in order; the first success wins (istiod's behaviour).

    If all fail, the first error is reported: the primary authenticator's
    reason is the one an operator can act on.
    """

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        if not authenticators:
            raise ValueError("FirstOf needs at least one authenticator")
        self._authenticators = tuple(authenticators)

    async def authenticate(self, metadata: Metadata, peer: str) -> Caller:
        first_error: AuthenticationError | None = None
        for authenticator in self._authenticators:
            try:
                return await authenticator.authenticate(metadata, peer)
            except AuthenticationError as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error


class InsecureDevAuthenticator:
    """Accepts every caller. Only for development, only behind ``--insecure-dev-auth``.

    Callers whose credentials the wrapped authenticator accepts keep their
    identity; everyone else becomes an anonymous ``Caller``. What anonymous
    callers may do is decided by authorization (the CA then signs the identity
    the CSR asks for).
    """

    name: Final = "insecure-dev"

    def __init__(self, inner: Authenticator | None = None) -> None:
        self._inner = inner
        self._warned_peers: set[str] = set()
        log.warning(
            "INSECURE: --insecure-dev-auth is on; unauthenticated callers are accepted "
            "and may obtain certificates for any identity"
        )

    async def authenticate(self, metadata: Metadata, peer: str) -> Caller:
        if self._inner is not None:
            try:
                return await self._inner.authenticate(metadata, peer)
            except AuthenticationError as exc:
                reason = str(exc)
        else:
            reason = "no authenticator configured"
        host = peer.rsplit(":", 1)[0]
        if host not in self._warned_peers and len(self._warned_peers) < 1024:
            self._warned_peers.add(host)
            log.warning(
                "INSECURE: admitting an unauthenticated caller",
                extra={"peer": peer, "reason": reason},
            )
        return Caller(identity=None, authenticator=self.name, cluster_id=cluster_id(metadata))
