"""File-mode credentials: a tokens file mapping opaque bearer tokens to identities.

One grant per line; ``#`` starts a comment::

    <token> <namespace>/<service account> [node=<node name>] [expires=<ISO 8601 UTC>]

``node=`` binds the token to a node: it plays the part of the pod name in a
bound Kubernetes token, and is what lets a node agent (ztunnel) ask for
identities of pods on that node. ``expires=`` makes the grant lapse.

The file is re-read when its inode, size or mtime change, checked with one
``stat`` per lookup, so ``xds token add`` takes effect without a restart.
Tokens are held by their SHA-256 digest: the secret itself is never kept in
a dict key or compared byte by byte with early exit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from xds.security.ca import Clock, utcnow
from xds.security.fileio import PRIVATE, atomic_write
from xds.security.identity import DEFAULT_TRUST_DOMAIN, Identity, InvalidIdentity

log = logging.getLogger("xds.authn")

TOKENS_FILE: Final = "tokens"
MIN_TOKEN_LENGTH: Final = 16
_NODE_NAME_MAX: Final = 253


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a valid token proves."""

    identity: Identity
    node: str | None = None
    expires: dt.datetime | None = None


class TokensFileError(ValueError):
    """A line of a tokens file is malformed (the message never contains the token)."""


def new_token() -> str:
    """32 random bytes, URL-safe base64: valid in an HTTP header as-is."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def format_grant(token: str, grant: TokenGrant) -> str:
    fields = [token, grant.identity.account]
    if grant.node:
        fields.append(f"node={grant.node}")
    if grant.expires:
        fields.append(f"expires={grant.expires.astimezone(dt.UTC).isoformat()}")
    return " ".join(fields)


def parse_line(line: str, trust_domain: str) -> tuple[str, TokenGrant] | None:
    """One line -> (token, grant); ``None`` for blank and comment lines."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    token, *rest = text.split()
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokensFileError(f"token is shorter than {MIN_TOKEN_LENGTH} characters")
    if not token.isascii() or not token.isprintable():
        raise TokensFileError("token contains characters not allowed in an HTTP header")
    if not rest:
        raise TokensFileError("missing <namespace>/<service account> after the token")
    account, *options = rest
    try:
        identity = Identity.from_account(account, trust_domain)
    except InvalidIdentity as exc:
        raise TokensFileError(str(exc)) from None
    node: str | None = None
    expires: dt.datetime | None = None
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not value:
            raise TokensFileError(f"expected key=value, got {option[:40]!r}")
        if key == "node":
            if len(value) > _NODE_NAME_MAX:
                raise TokensFileError("node name is too long")
            node = value
        elif key == "expires":
            expires = _parse_time(value)
        else:
            raise TokensFileError(f"unknown option {key[:40]!r} (known: node, expires)")
    return token, TokenGrant(identity, node, expires)


def _parse_time(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TokensFileError(f"expires={value[:40]!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


class TokensFile:
    """The grants in a tokens file, reloaded when the file changes.

    A line that does not parse is skipped and logged (by line number), so one
    typo does not lock every other workload out. A file that cannot be read
    at all leaves no grants: failing closed.
    """

    def __init__(
        self, path: Path, trust_domain: str = DEFAULT_TRUST_DOMAIN, clock: Clock = utcnow
    ) -> None:
        self.path = path
        self.trust_domain = trust_domain
        self._clock = clock
        self._grants: dict[bytes, tuple[bytes, TokenGrant]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._loaded_once = False
        # Lookups run on the event loop, but tests and tools may share one
        # instance across threads; reloading must not interleave.
        self._lock = threading.Lock()

    def lookup(self, token: str) -> TokenGrant | None:
        """The grant for ``token``, or ``None``. Expiry is checked by the caller."""
        self._reload_if_changed()
        wanted = digest(token)
        entry = self._grants.get(wanted)
        # The dict probe compares digests, not tokens: how long it takes says
        # nothing about how much of a secret token a guess got right. The
        # final check is constant-time all the same.
        if entry is None or not hmac.compare_digest(entry[0], wanted):
            return None
        return entry[1]

    def __len__(self) -> int:
        self._reload_if_changed()
        return len(self._grants)

    def _reload_if_changed(self) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and self._loaded_once:
            return
        with self._lock:
            if stamp == self._stamp and self._loaded_once:
                return
            self._grants = self._load() if stamp is not None else {}
            if stamp is None:
                log.warning(
                    "tokens file does not exist: no bearer token is accepted",
                    extra={"path": self.path},
                )
            self._stamp = stamp
            self._loaded_once = True

    def _load(self) -> dict[bytes, tuple[bytes, TokenGrant]]:
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            log.error(
                "cannot read the tokens file; no token is accepted",
                extra={"path": self.path, "reason": exc},
            )
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "tokens file is accessible by group/others; use chmod 600",
                extra={"path": self.path, "mode": f"{stat.S_IMODE(mode):o}"},
            )
        grants: dict[bytes, tuple[bytes, TokenGrant]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                parsed = parse_line(line, self.trust_domain)
            except TokensFileError as exc:
                log.error(
                    "tokens file line ignored",
                    extra={"path": self.path, "line": number, "reason": exc},
                )
                continue
            if parsed is None:
                continue
            key = digest(parsed[0])
            if key in grants:
                log.error(
                    "tokens file line ignored",
                    extra={"path": self.path, "line": number, "reason": "duplicate token"},
                )
                continue
            grants[key] = (key, parsed[1])
        log.info("tokens loaded", extra={"path": self.path, "tokens": len(grants)})
        return grants


def add_grant(path: Path, grant: TokenGrant, token: str | None = None) -> str:
    """Append a grant with a new (or given) token; returns the token.

    The file is rewritten atomically with mode 0600 under an exclusive lock,
    so concurrent ``xds token add`` runs do not lose each other's lines.
    """
    token = token or new_token()
    with _locked(path):
        try:
            existing = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = "# <token> <namespace>/<service account> [node=<node>] [expires=<time>]\n"
        if existing and not existing.endswith("\n"):
            existing += "\n"
        atomic_write(path, (existing + format_grant(token, grant) + "\n").encode("utf-8"), PRIVATE)
    return token


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, PRIVATE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
