"""State-of-the-world xDS: the protocol state of one stream, without I/O.

Follows istiod's rules (``ShouldRespond``): a request without a nonce (or the
first for its type) subscribes and is answered in full; a request echoing the
last nonce is an ACK or, with ``error_detail``, a NACK that is recorded and not
answered (the next push is the retry); any other nonce is stale and ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2

from xds import wire
from xds.resources import Resource
from xds.serving.session import (
    Clock,
    NonceSource,
    Received,
    RequestKind,
    TypeFilter,
    TypeStatus,
    allow_all,
    error_message,
    monotonic,
    requested_type,
)
from xds.serving.store import ScopeView
from xds.type_urls import SOTW_WILDCARD, in_push_order

# envoy.service.discovery.v3.DiscoveryResponse field numbers
_VERSION_INFO = 1
_TYPE_URL = 4
_NONCE = 5
_CONTROL_PLANE = 6
_CONTROL_PLANE_IDENTIFIER = 1


@dataclass
class SotwResponse:
    type_url: str
    version: str
    nonce: str
    resources: list[Resource]
    control_plane: str = ""  # control_plane.identifier, as istiod sets on debug responses

    def encode(self) -> bytes:
        control_plane = (
            wire.length_delimited(
                _CONTROL_PLANE, wire.string_field(_CONTROL_PLANE_IDENTIFIER, self.control_plane)
            )
            if self.control_plane
            else b""
        )
        return b"".join(
            (
                wire.string_field(_VERSION_INFO, self.version),
                *(r.sotw_field() for r in self.resources),
                wire.string_field(_TYPE_URL, self.type_url),
                wire.string_field(_NONCE, self.nonce),
                control_plane,
            )
        )


@dataclass
class SotwWatch:
    status: TypeStatus
    wildcard: bool
    names: frozenset[str]
    sent_versions: dict[str, str]
    sent_version_info: str = ""
    acked_version_info: str = ""


class SotwSession:
    """One state-of-the-world ADS stream's protocol state."""

    def __init__(
        self, view: ScopeView, *, type_filter: TypeFilter = allow_all, clock: Clock = monotonic
    ) -> None:
        self.view = view
        self.watches: dict[str, SotwWatch] = {}
        self._type_filter = type_filter
        self._clock = clock
        self._nonce = NonceSource()
        self._versions = 0

    def receive(
        self, request: discovery_pb2.DiscoveryRequest
    ) -> tuple[Received, list[SotwResponse]]:
        type_url = requested_type(request, self._type_filter)
        names = frozenset(request.resource_names)
        wildcard = "*" in names or (not names and type_url in SOTW_WILDCARD)
        names = names - {"*"}
        watch = self.watches.get(type_url)

        if watch is None or not request.response_nonce:
            # A new subscription, or the first request after a reconnect.
            watch = self.watches[type_url] = SotwWatch(
                watch.status if watch else TypeStatus(type_url), wildcard, names, {}
            )
            return Received(type_url, RequestKind.SUBSCRIBE), [self._respond(watch, None)]

        if request.response_nonce != watch.status.sent_nonce:
            return Received(type_url, RequestKind.STALE), []
        received = watch.status.settle(
            request.response_nonce, error_message(request), self._clock()
        )
        if received.kind is RequestKind.NACK:
            return received, []
        if received.kind is RequestKind.ACK:
            watch.acked_version_info = watch.sent_version_info

        if wildcard == watch.wildcard and names == watch.names:
            return received, []
        added = names - watch.names
        grew = (wildcard and not watch.wildcard) or bool(added)
        watch.wildcard, watch.names = wildcard, names
        watch.sent_versions = {
            n: v for n, v in watch.sent_versions.items() if wildcard or n in names
        }
        if watch.wildcard or grew:
            # Wildcard types always get the full set; others only when names
            # were added (a shrinking subscription needs no answer).
            return received, [self._respond(watch, None if watch.wildcard else added)]
        return received, []

    def push(
        self, touched: Mapping[str, Iterable[str]], origin: float | None = None
    ) -> list[SotwResponse]:
        responses = []
        for type_url in in_push_order(touched):
            watch = self.watches.get(type_url)
            if watch is None or not watch.status.sent_nonce:
                continue
            changed = [n for n in touched[type_url] if self._differs(watch, n)]
            if not changed:
                continue
            # Wildcard types (LDS, CDS) are replaced as a whole; for the others
            # a resource missing from a response is kept, so send what changed.
            responses.append(self._respond(watch, None if watch.wildcard else changed, origin))
        return responses

    def _differs(self, watch: SotwWatch, name: str) -> bool:
        if not (watch.wildcard or name in watch.names):
            return False
        resource = self.view.get(watch.status.type_url, name)
        current = None if resource is None else resource.version
        return watch.sent_versions.get(name) != current

    def _respond(
        self, watch: SotwWatch, only: Iterable[str] | None, origin: float | None = None
    ) -> SotwResponse:
        type_url = watch.status.type_url
        if watch.wildcard:
            resources = list(self.view.resources(type_url).values())
        else:
            wanted = watch.names if only is None else only
            resources = [r for r in (self.view.get(type_url, n) for n in wanted) if r is not None]
        if only is None or watch.wildcard:
            watch.sent_versions = {r.name: r.version for r in resources}
        else:
            for name in only:
                resource = self.view.get(type_url, name)
                if resource is None:
                    watch.sent_versions.pop(name, None)
                else:
                    watch.sent_versions[name] = resource.version
        self._versions += 1
        version = f"{self.view.generation(type_url)}.{self._versions}"
        nonce = self._nonce()
        watch.sent_version_info = version
        watch.status.record_sent(nonce, self._clock(), origin)
        return SotwResponse(type_url, version, nonce, resources)
