"""What both xDS variants share: per-type bookkeeping and request outcomes.

A *session* is the protocol state of one stream, kept apart from I/O in the
manner of h11: the async handler feeds it requests and store changes, and it
answers with the responses to write. Nothing in a session awaits.
"""

from __future__ import annotations

import enum
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2


class ProtocolError(ValueError):
    """The client broke the xDS protocol; the stream ends with INVALID_ARGUMENT."""


class Forbidden(PermissionError):
    """This client may not subscribe to this type; the stream ends with PERMISSION_DENIED."""


class RequestKind(enum.Enum):
    SUBSCRIBE = "subscribe"  # first request for a type on this stream
    ACK = "ack"
    NACK = "nack"
    UPDATE = "update"  # subscription change without an ACK
    STALE = "stale"  # names a nonce we no longer wait for


TypeFilter = Callable[[str], str | None]
"""Returns why a type may not be subscribed on this stream, or None if it may."""


def allow_all(type_url: str) -> str | None:
    return None


@dataclass
class TypeStatus:
    """Delivery state of one type on one stream: what syncz and CSDS report."""

    type_url: str
    sent_nonce: str = ""
    sent_at: float | None = None
    acked_nonce: str = ""
    acked_at: float | None = None
    nacked_nonce: str = ""
    last_error: str = ""
    responses: int = 0
    acks: int = 0
    nacks: int = 0
    # nonce -> (monotonic send time, time of the change it carries), oldest first
    pending: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    @property
    def state(self) -> str:
        """istiod's sync state names: SYNCED, STALE, NOT_SENT or ERROR."""
        if not self.sent_nonce:
            return "NOT_SENT"
        if self.nacked_nonce == self.sent_nonce:
            return "ERROR"
        if self.acked_nonce == self.sent_nonce:
            return "SYNCED"
        return "STALE"

    def record_sent(self, nonce: str, now: float, origin: float | None = None) -> None:
        self.sent_nonce = nonce
        self.sent_at = now
        self.responses += 1
        self.pending[nonce] = (now, now if origin is None else origin)

    def settle(self, nonce: str, error: str | None, now: float) -> Received:
        """Record an ACK or NACK of ``nonce``."""
        times = self.pending.get(nonce)
        if times is None:
            return Received(self.type_url, RequestKind.STALE)
        sent_at, origin = times
        # Clients answer in order, so every older response has been processed too.
        while self.pending:
            oldest, _ = self.pending.popitem(last=False)
            if oldest == nonce:
                break
        if error is None:
            self.acked_nonce, self.acked_at, self.last_error = nonce, now, ""
            self.acks += 1
            return Received(self.type_url, RequestKind.ACK, now - sent_at, now - origin)
        self.nacked_nonce, self.last_error = nonce, error
        self.nacks += 1
        return Received(self.type_url, RequestKind.NACK, now - sent_at, now - origin, error)


@dataclass
class Received:
    """What one request meant; the handler uses it for logs and metrics."""

    type_url: str
    kind: RequestKind
    latency: float | None = None  # response sent -> ACK/NACK, seconds
    since_change: float | None = None  # config change -> ACK/NACK, seconds
    error: str = ""  # NACK detail


class NonceSource:
    """Unique nonces per stream: a random stream prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"


Clock = Callable[[], float]
monotonic: Clock = time.monotonic


Request = discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest
"""A request of either variant: a stream carries only one of them."""


def requested_type(request: Request, type_filter: TypeFilter) -> str:
    """The type URL a (Delta)DiscoveryRequest asks for, once this stream may ask for it."""
    type_url = request.type_url
    if not type_url:
        raise ProtocolError(f"{type(request).__name__}.type_url is empty")
    denial = type_filter(type_url)
    if denial is not None:
        raise Forbidden(denial)
    return type_url


def error_message(request: Request) -> str | None:
    """The NACK detail of a (Delta)DiscoveryRequest, or None if it is not a NACK."""
    if not request.HasField("error_detail"):
        return None
    detail = request.error_detail
    return detail.message or f"code {detail.code}"
