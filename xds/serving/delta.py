"""Incremental (Delta) xDS: the protocol state of one stream, without I/O.

Per type the session remembers the subscription (wildcard and/or names) and,
for every name, the version the client holds. A push or a reconnect then only
carries resources whose version differs, and ``removed_resources`` for names
the client holds that no longer exist.

A client that subscribes by name (ztunnel's on-demand mode) also gets what its
names imply, as istiod's ``AdditionalPodSubscriptions`` does: subscribing to a
name covers the resources in that name's group (``Resource.groups``: a
Service's workloads), and the binding may give a stream standing groups (a
ztunnel's own node). Those resources are sent unasked, and their changes pushed.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

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
from xds.type_urls import in_push_order, short_name

WILDCARD = "*"

# envoy.service.discovery.v3.DeltaDiscoveryResponse field numbers
_SYSTEM_VERSION_INFO = 1
_TYPE_URL = 4
_NONCE = 5
_REMOVED_RESOURCES = 6


@dataclass
class DeltaResponse:
    type_url: str
    nonce: str
    resources: list[Resource]
    removed: list[str]
    system_version: str = ""
    # A whole type, pre-encoded once for every stream (``ScopeView.delta_blob``):
    # sent instead of ``resources``.
    everything: bytes = b""
    aliases: bool = False
    """Send each resource's aliases (to clients that subscribe by name)."""
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        """The serialized DeltaDiscoveryResponse, spliced from cached resource bytes (once:
        a response of ``SharedUpdates`` is written to many streams)."""
        if self._encoded is None:
            self._encoded = b"".join(
                (
                    wire.string_field(_SYSTEM_VERSION_INFO, self.system_version),
                    self.everything,
                    *(r.delta_field(self.aliases) for r in self.resources),
                    wire.string_field(_TYPE_URL, self.type_url),
                    wire.string_field(_NONCE, self.nonce),
                    *(wire.length_delimited(_REMOVED_RESOURCES, n.encode()) for n in self.removed),
                )
            )
        return self._encoded


class SharedUpdates:
    """The responses of the common pushes (``DeltaSession._shared_push``), each built once
    and written to every stream it applies to: the same object, bytes and nonce.

    A wildcard client holds exactly the store's versions map of some generation (its
    last push). If that is the generation before the last commit, it gets exactly that
    commit (``response``); if it is further behind (it was still being written to when
    more commits came, as under churn), it gets what changed since, which is the same
    for every client behind by the same commits (``catch_up``). A nonce only has to be
    unique within a stream: a stream gets each of these at most once (it then holds the
    current generation), and the stream's own nonces (``NonceSource``) have another form.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        # (scope, type URL) -> the generation it was built for, and the response (None:
        # the commit changed nothing a synced client holds).
        self._latest: dict[tuple[str, str], tuple[int, DeltaResponse | None]] = {}
        # (scope, type URL) -> the generation, and per (held map, names) the response.
        self._catch_ups: dict[tuple[str, str], tuple[int, dict[_CatchUpKey, _CatchUp]]] = {}

    def catch_up(
        self, view: ScopeView, type_url: str, held: Mapping[str, str], names: frozenset[str]
    ) -> DeltaResponse | None:
        """What a wildcard client holding exactly ``held`` (a versions map the store
        shared) must get for ``names``, touched since."""
        key = (view.scope_of(type_url), type_url)
        generation = view.generation(type_url)
        entry = self._catch_ups.get(key)
        if entry is None or entry[0] != generation:
            entry = self._catch_ups[key] = (generation, {})
        cached = entry[1].get((id(held), names))
        if cached is not None and cached.held is held:
            return cached.response
        updated: list[Resource] = []
        removed: list[str] = []
        for name in sorted(names):
            resource = view.get(type_url, name)
            version = held.get(name)
            if resource is None:
                if version is not None:
                    removed.append(name)
            elif version != resource.version:
                updated.append(resource)
        response = None
        if updated or removed:
            nonce = f"{self._prefix}-{short_name(type_url)}-{generation}-{next(self._counter)}"
            response = DeltaResponse(type_url, nonce, updated, removed, str(generation))
        # The map is kept with its entry: its id is not reused while the entry lives.
        entry[1][(id(held), names)] = _CatchUp(held, response)
        return response

    def response(self, view: ScopeView, type_url: str) -> DeltaResponse | None:
        key = (view.scope_of(type_url), type_url)
        generation = view.generation(type_url)
        latest = self._latest.get(key)
        if latest is not None and latest[0] == generation:
            return latest[1]
        updates, removed = view.last_change_encoded(type_url)
        response = None
        if updates or removed:
            nonce = f"{self._prefix}-{short_name(type_url)}-{generation}"
            response = DeltaResponse(
                type_url, nonce, [], list(removed), str(generation), everything=updates
            )
        self._latest[key] = (generation, response)
        return response


_CatchUpKey = tuple[int, frozenset[str]]


@dataclass(frozen=True)
class _CatchUp:
    held: Mapping[str, str]
    response: DeltaResponse | None


class HeldVersions(Mapping[str, str]):
    """name -> version of what a client holds: a shared base plus its own changes.

    A wildcard client that is in sync holds exactly the store's current
    versions, so it points at the store's shared map instead of copying it:
    1,000 ztunnels on a 10k-pod mesh then cost one map, not a thousand."""

    __slots__ = ("_base", "_own", "_removed")

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self._base: Mapping[str, str] = base if base is not None else {}
        self._own: dict[str, str] = {}
        self._removed: set[str] = set()

    def __getitem__(self, name: str) -> str:
        if name in self._own:
            return self._own[name]
        if name in self._removed:
            raise KeyError(name)
        return self._base[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        for name in self._base:
            if name not in self._own and name not in self._removed:
                yield name

    def __len__(self) -> int:
        extra = sum(1 for name in self._own if name not in self._base)
        return len(self._base) - len(self._removed) + extra

    def set(self, name: str, version: str) -> None:
        self._own[name] = version
        self._removed.discard(name)

    def discard(self, name: str) -> None:
        self._own.pop(name, None)
        if name in self._base:
            self._removed.add(name)

    def rebase(self, base: Mapping[str, str]) -> None:
        self._base, self._own, self._removed = base, {}, set()

    def is_exactly(self, base: Mapping[str, str] | None) -> bool:
        """True when this is ``base`` itself, with no changes of its own."""
        return base is not None and self._base is base and not self._own and not self._removed

    @property
    def shared(self) -> Mapping[str, str] | None:
        """The base, when this is exactly it (no changes of its own)."""
        return None if self._own or self._removed else self._base


@dataclass
class DeltaWatch:
    status: TypeStatus
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    client_versions: HeldVersions = field(default_factory=HeldVersions)
    groups: set[str] = field(default_factory=set)
    """Groups whose members are subscribed without being named (see the module doc)."""

    def subscribed(self, name: str, resource: Resource | None = None) -> bool:
        """Whether a change of ``name`` (now ``resource``, None if gone) concerns the client:
        asked for, implied by a group, or held (it must hear that it changed or went)."""
        return (
            self.wildcard
            or name in self.names
            or name in self.client_versions
            or (resource is not None and not self.groups.isdisjoint(resource.groups))
        )


class DeltaSession:
    """One Delta ADS stream's protocol state."""

    def __init__(
        self,
        view: ScopeView,
        *,
        type_filter: TypeFilter = allow_all,
        clock: Clock = monotonic,
        standing_groups: Mapping[str, Iterable[str]] | None = None,
        shared: SharedUpdates | None = None,
    ) -> None:
        """``standing_groups``: per type, groups subscribed for as long as the stream lasts
        (they matter only to a client that does not subscribe to everything). ``shared``:
        the process's, so that every stream writes the same response to a commit."""
        self.view = view
        self.watches: dict[str, DeltaWatch] = {}
        self._type_filter = type_filter
        self._standing = {t: frozenset(g) for t, g in (standing_groups or {}).items()}
        self._clock = clock
        self._nonce = NonceSource()
        self._shared = shared if shared is not None else SharedUpdates()

    def receive(
        self, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> tuple[Received, list[DeltaResponse]]:
        """Handle one DeltaDiscoveryRequest; returns its meaning and the responses to send."""
        type_url = requested_type(request, self._type_filter)
        now = self._clock()
        watch = self.watches.get(type_url)
        first = watch is None
        if watch is None:
            watch = self.watches[type_url] = DeltaWatch(
                TypeStatus(type_url), groups=set(self._standing.get(type_url, ()))
            )

        received = Received(type_url, RequestKind.SUBSCRIBE if first else RequestKind.UPDATE)
        if request.response_nonce:
            received = watch.status.settle(request.response_nonce, error_message(request), now)

        subscribe = list(request.resource_names_subscribe)
        unsubscribe = list(request.resource_names_unsubscribe)
        if first:
            # No names means wildcard; "*" subscribed and unsubscribed at once is
            # ztunnel's on-demand "subscribe to nothing".
            watch.wildcard = not subscribe or WILDCARD in subscribe
            if WILDCARD in unsubscribe:
                watch.wildcard = False
            watch.client_versions = HeldVersions(dict(request.initial_resource_versions))
            if not watch.wildcard:
                # What a reconnecting client holds stays subscribed, with what it implies.
                watch.names.update(watch.client_versions)
                watch.groups.update(watch.client_versions)
        added, echoes, asked = self._subscribe(watch, subscribe)
        self._unsubscribe(watch, unsubscribe)

        if first:
            response = self._full_response(watch, echoes)
            return received, [response]
        if not (added or echoes or asked):
            return received, []
        # Names asked for are answered, even if the client is thought to hold them (it
        # asks because it does not) and even with nothing: an on-demand ztunnel waits for
        # a response naming what it asked for, and istiod never leaves it in silence.
        names = list(dict.fromkeys([*asked, *added]))  # an asked name may also be new
        update = self._response(watch, names, echoes, always=True, resend=frozenset(asked))
        return received, [] if update is None else [update]

    def push(
        self, touched: Mapping[str, Iterable[str]], origin: float | None = None
    ) -> list[DeltaResponse]:
        """Responses for names touched in the store, in make-before-break order.

        ``origin`` is when the change happened, for convergence measurements."""
        responses = []
        for type_url in in_push_order(touched):
            watch = self.watches.get(type_url)
            if watch is None:
                continue
            shared, response = self._shared_push(watch, touched[type_url], origin)
            if not shared:
                names = [
                    n for n in touched[type_url] if watch.subscribed(n, self.view.get(type_url, n))
                ]
                response = self._response(watch, names, (), origin=origin)
            if response is not None:
                responses.append(response)
        return responses

    # -- internals ------------------------------------------------------------

    def _shared_push(
        self, watch: DeltaWatch, touched: Iterable[str], origin: float | None
    ) -> tuple[bool, DeltaResponse | None]:
        """The common cases, computed once for all streams (see ``SharedUpdates``): a
        wildcard client that holds exactly what the store shared at some generation.

        Returns whether that case applied, and the response (None: nothing to send)."""
        held = watch.client_versions.shared
        if not (watch.wildcard and not watch.names and held is not None):
            return False, None
        type_url = watch.status.type_url
        previous, changed = self.view.last_change(type_url)
        names = frozenset(touched)
        if held is previous and names == changed:
            response = self._shared.response(self.view, type_url)
        else:
            response = self._shared.catch_up(self.view, type_url, held, names)
        watch.client_versions.rebase(self.view.versions(type_url))
        if response is not None:
            watch.status.record_sent(response.nonce, self._clock(), origin)
        return True, response

    def _subscribe(
        self, watch: DeltaWatch, names: list[str]
    ) -> tuple[list[str], list[str], list[str]]:
        """Returns the newly subscribed or implied primary names, the aliases to echo
        back, and the primary names asked for (new or not)."""
        added: list[str] = []
        echoes: list[str] = []
        asked: list[str] = []
        type_url = watch.status.type_url
        for name in names:
            if name == WILDCARD:
                watch.wildcard = True
                continue
            primary = name
            if self.view.get(type_url, name) is None:
                resolved = self.view.resolve_alias(type_url, name)
                if resolved is not None:
                    # ztunnel waits for a response naming exactly what it asked
                    # for (e.g. "network/10.0.0.5"); the resource travels under
                    # its primary name, so the alias is echoed as removed.
                    primary = resolved
                    echoes.append(name)
            asked.append(primary)
            if primary not in watch.names:
                watch.names.add(primary)
                added.append(primary)
            if primary not in watch.groups:
                # A Service looked up by its VIP brings its workloads along.
                watch.groups.add(primary)
                added.extend(sorted(self.view.members(type_url, primary) - watch.names))
        return added, echoes, asked

    def _unsubscribe(self, watch: DeltaWatch, names: list[str]) -> None:
        for name in names:
            if name == WILDCARD:
                watch.wildcard = False
            else:
                watch.names.discard(name)
                watch.client_versions.discard(name)
                if name not in self._standing.get(watch.status.type_url, ()):
                    watch.groups.discard(name)

    def _full_response(self, watch: DeltaWatch, echoes: list[str]) -> DeltaResponse:
        type_url = watch.status.type_url
        if watch.wildcard and not watch.names and not watch.client_versions and not echoes:
            # A new wildcard client (most ztunnel connects): everything, from bytes
            # encoded once for all streams, and the store's shared version map.
            nonce = self._nonce()
            watch.status.record_sent(nonce, self._clock())
            watch.client_versions.rebase(self.view.versions(type_url))
            return DeltaResponse(
                type_url,
                nonce,
                [],
                [],
                str(self.view.generation(type_url)),
                everything=self.view.delta_blob(type_url),
            )
        current = self.view.resources(type_url)
        if watch.wildcard:
            candidates: Iterable[str] = list(current) + list(watch.names - current.keys())
        else:
            implied = {
                n for group in sorted(watch.groups) for n in self.view.members(type_url, group)
            }
            candidates = [*sorted(watch.names), *sorted(implied - watch.names)]
        stale = [n for n in watch.client_versions if n not in current]
        response = self._response(watch, [*candidates, *stale], echoes, always=True)
        assert response is not None
        return response

    def _response(
        self,
        watch: DeltaWatch,
        names: Iterable[str],
        echoes: Iterable[str],
        *,
        always: bool = False,
        origin: float | None = None,
        resend: frozenset[str] = frozenset(),
    ) -> DeltaResponse | None:
        """``resend``: names sent even when the client holds their current version."""
        type_url = watch.status.type_url
        updated: list[Resource] = []
        removed: list[str] = list(echoes)
        for name in names:
            resource = self.view.get(type_url, name)
            held = watch.client_versions.get(name)
            if resource is None:
                if held is not None or (name in watch.names and name not in removed):
                    # Tell the client it is gone (or, for a name it asked for
                    # explicitly, that it does not exist) so it stops waiting.
                    removed.append(name)
                    watch.client_versions.discard(name)
            elif held != resource.version or name in resend:
                updated.append(resource)
                watch.client_versions.set(name, resource.version)
        if watch.wildcard and not watch.names:
            # Every change is sent to a wildcard client, so it now holds exactly
            # the store's current state: share the store's map again.
            watch.client_versions.rebase(self.view.versions(type_url))
        if not (updated or removed or always):
            return None
        nonce = self._nonce()
        watch.status.record_sent(nonce, self._clock(), origin)
        return DeltaResponse(
            type_url,
            nonce,
            updated,
            removed,
            str(self.view.generation(type_url)),
            aliases=not watch.wildcard,
        )
