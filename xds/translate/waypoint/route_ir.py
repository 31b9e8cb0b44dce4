"""Routing rules in one shape, whichever API they came from.

HTTPRoute, GRPCRoute and VirtualService rules are first turned into these
plain values (``gateway_api.py``, ``virtual_service.py``); ``routes.py``
then turns them into Envoy routes. This is how istiod works too (it converts
Gateway API routes into VirtualServices), and it keeps each API's quirks in
its own module and the Envoy details in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    # Gateway API PathPrefix: "/foo" matches "/foo" and "/foo/bar", not "/foobar".
    PATH_SEPARATED_PREFIX = "path_separated_prefix"
    SUFFIX = "suffix"
    REGEX = "regex"
    PRESENT = "present"


@dataclass(frozen=True, slots=True)
class StringMatch:
    kind: MatchKind
    value: str = ""
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A header (or pseudo-header such as ``:method``) condition; ``invert`` negates it."""

    name: str
    match: StringMatch
    invert: bool = False


@dataclass(frozen=True, slots=True)
class QueryMatch:
    name: str
    match: StringMatch


@dataclass(frozen=True, slots=True)
class Match:
    """One way a request can match a rule; all conditions must hold."""

    path: StringMatch | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()
    name: str = ""

    @property
    def is_catch_all(self) -> bool:
        path_all = self.path is None or (
            self.path.kind in (MatchKind.PREFIX, MatchKind.PATH_SEPARATED_PREFIX)
            and self.path.value in ("", "/")
        )
        return path_all and not self.headers and not self.query


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header edits; ``set`` overwrites, ``add`` appends."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class Destination:
    """A backend: ``host`` is a fully qualified hostname; ``port`` may be unknown."""

    host: str
    port: int | None = None
    subset: str | None = None
    weight: int = 1
    request_headers: HeaderOps = HeaderOps()
    response_headers: HeaderOps = HeaderOps()
    authority: str | None = None
    # The backend cannot be used (unknown kind, not permitted): requests
    # that pick it fail with 500 rather than reach something unintended.
    invalid: bool = False


class PathRewriteKind(StrEnum):
    PREFIX = "prefix"
    FULL = "full"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    # Replace only the matched prefix (Gateway API ReplacePrefixMatch).
    prefix: str | None = None
    status: int = 301


@dataclass(frozen=True, slots=True)
class Rewrite:
    """URL rewrite: a path replacement (``PathRewriteKind``) and/or the authority."""

    path_kind: PathRewriteKind | None = None
    path: str = ""
    regex_substitution: str = ""
    authority: str | None = None


@dataclass(frozen=True, slots=True)
class DirectResponse:
    status: int
    body: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry policy; ``attempts`` 0 means "do not retry"."""

    attempts: int
    retry_on: tuple[str, ...] = ()
    status_codes: tuple[int, ...] = ()
    per_try_timeout: timedelta | None = None
    backoff: timedelta | None = None
    retry_remote_localities: bool = False


# Istio's default: retry twice on connection-level failures, on another host.
DEFAULT_RETRY_ON = ("connect-failure", "refused-stream", "unavailable", "cancelled")
DEFAULT_RETRY = Retry(attempts=2, retry_on=(*DEFAULT_RETRY_ON, "retriable-status-codes"))


@dataclass(frozen=True, slots=True)
class Mirror:
    destination: Destination
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class FaultDelay:
    delay: timedelta
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class FaultAbort:
    http_status: int | None = None
    grpc_status: int | None = None
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Fault:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True, slots=True)
class Cors:
    """A CORS policy for the rule's routes (Envoy's CORS filter answers preflights).

    ``forward_unmatched_preflights``: a preflight from an origin that is not allowed goes
    on to the backend (True) or is answered by the proxy without CORS headers (False).
    """

    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    allow_credentials: bool | None = None
    forward_unmatched_preflights: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule: where requests that match go, and what happens on the way.

    ``matches`` empty means "everything". Exactly one of ``destinations``,
    ``redirect`` and ``direct_response`` decides the action; a rule with none
    of them answers 500. ``retry`` ``None`` means the mesh default.
    ``config`` is the source object's path, for route metadata.
    """

    name: str
    matches: tuple[Match, ...] = ()
    destinations: tuple[Destination, ...] = ()
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None
    rewrite: Rewrite | None = None
    request_headers: HeaderOps = HeaderOps()
    response_headers: HeaderOps = HeaderOps()
    timeout: timedelta | None = None
    retry: Retry | None = None
    mirrors: tuple[Mirror, ...] = ()
    fault: Fault | None = None
    cors: Cors | None = None
    config: str = ""
    # Gateway API semantics: unresolvable backends answer 500 instead of 503.
    gateway_semantics: bool = False
