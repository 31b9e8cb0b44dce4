"""Simulated proxies on ``xds.client``: ztunnels (Delta) and Envoy waypoints (Delta or SotW).

A ztunnel sim sends what ztunnel sends (its node id, the NAME / NAMESPACE /
INSTANCE_IPS / NODE_NAME / CLUSTER_ID metadata, one wildcard Delta request
per type) and ACKs every response with its nonce, NACKing resources that do
not decode or carry an address of the wrong length, as ztunnel does. It is
"synced" once it has ACKed the first response of both types (ztunnel's
readiness rule).

Unlike ``xds.client.DeltaClient`` (and a real ztunnel) the sim does not
keep every resource it holds: a thousand copies of a 10k-pod mesh would
cost the generator more CPU and memory than the server under test. It
counts the first (full) response of each type instead, decodes the
resources of every later response, and reports the names it was told to
track to an ``Observer``. One sim per client process (``validate=True``)
also decodes every resource of the full state.

Waypoint sims behave like Envoy: CDS and LDS wildcard first, then EDS for
the clusters of type EDS, and SDS (``default``, ``ROOTCA``) on the TLS port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError

from xds import type_urls
from xds.client import DeltaClient, SotwClient
from xds.proto.istio.security import authorization_pb2
from xds.proto.istio.workload import workload_pb2

ZTUNNEL_TYPES = (type_urls.ADDRESS, type_urls.AUTHORIZATION)
ENVOY_CONFIG_TYPES = frozenset({type_urls.CLUSTER, type_urls.LISTENER, type_urls.ROUTE})
ENVOY_VERIFIED_TYPES = (type_urls.CLUSTER, type_urls.LISTENER, type_urls.ENDPOINT)
"""What the soak compares of a waypoint's state (secrets are minted per request)."""
SECRET_NAMES = ("default", "ROOTCA")


@dataclass(frozen=True)
class ProxySpec:
    """Who a simulated proxy claims to be (picklable: sent to client processes)."""

    kind: str  # "ztunnel" or "waypoint"
    node_id: str
    metadata: dict[str, Any]
    audience: str
    """Which changes it must receive: "ztunnel", or its waypoint's scope."""
    account: str
    """The identity its bearer token is for on the TLS port (namespace/serviceaccount)."""
    delta: bool = True
    also: tuple[str, ...] = ()
    """More audiences: an on-demand ztunnel also receives its node's pod changes."""
    on_demand: bool = False
    """ztunnel's ``XDS_ON_DEMAND``: Address subscribes to nothing, not to everything."""

    def receives(self, audience: str) -> bool:
        return audience == self.audience or audience in self.also


@dataclass(eq=False)
class ProxyState:
    """What one simulated proxy has seen; read by its client process."""

    index: int
    spec: ProxySpec
    started_at: float | None = None
    synced_at: float | None = None
    first_synced_at: float | None = None
    awaiting: set[str] = field(default_factory=set)
    streaming: bool = False
    messages: int = 0
    bytes: int = 0
    initial_bytes: int = 0
    initial_resources: int = 0
    nacks: int = 0
    first_nack: str = ""
    stream_errors: int = 0
    failures: int = 0
    """Stream errors since the proxy was last synced: its reconnect backoff (as ztunnel's
    and Envoy's, which reset once a stream works)."""
    first_error: str = ""
    last_size: int = 0


class Observer(Protocol):
    def observed(self, state: ProxyState, key: str, at: float, removed: bool) -> None:
        """A tracked name arrived (updated, or in ``removed_resources``) and was ACKed."""

    def synced(self, state: ProxyState, at: float) -> None:
        """The proxy has ACKed the first response of every type it waits for."""

    def ended(self, state: ProxyState, error: BaseException) -> None:
        """The stream ended (not by ``close``)."""


class _Counting:
    """A response type whose ``FromString`` also counts the bytes received."""

    def __init__(self, message_type: Any, state: ProxyState) -> None:
        self._type = message_type
        self._state = state

    def FromString(self, data: bytes) -> Any:  # protobuf's spelling
        self._state.bytes += len(data)
        self._state.last_size = len(data)
        return self._type.FromString(data)


def validate_ztunnel(response: Any) -> str | None:
    """ztunnel's per-resource checks: decodes, and IPs of 4 or 16 bytes. NACK text or None."""
    problems = []
    for resource in response.resources:
        body = resource.resource.value
        try:
            if response.type_url == type_urls.ADDRESS:
                address = workload_pb2.Address.FromString(body)
                if address.HasField("workload"):
                    ips: Sequence[bytes] = address.workload.addresses
                else:
                    ips = [a.address for a in address.service.addresses]
                if any(len(ip) not in (4, 16) for ip in ips):
                    problems.append(f"{resource.name}: address must be 4 or 16 bytes")
            elif response.type_url == type_urls.AUTHORIZATION:
                authorization_pb2.Authorization.FromString(body)
        except DecodeError as e:
            problems.append(f"{resource.name}: decode: {e}")
    return "; ".join(problems) or None


class _Simulated:
    """Bookkeeping shared by every sim: byte counting, sync detection, stream end."""

    state: ProxyState
    observer: Observer
    _requests: asyncio.Queue[Any]
    _call: Any

    def _begin(self, waiting_for: set[str]) -> None:
        self.state.awaiting = set(waiting_for)
        self.state.synced_at = None
        self.state.streaming = True
        if self.state.started_at is None:
            self.state.started_at = time.monotonic()

    def _received_initial(self, type_url: str, resources: int, now: float) -> None:
        state = self.state
        state.awaiting.discard(type_url)
        state.initial_bytes += state.last_size
        state.initial_resources += resources
        if not state.awaiting:
            state.synced_at = now
            state.failures = 0
            if state.first_synced_at is None:
                state.first_synced_at = now
            self.observer.synced(state, now)

    def _nacked(self, message: str) -> None:
        self.state.nacks += 1
        self.state.first_nack = self.state.first_nack or message[:300]

    async def _read_all(self, call: grpc.aio.StreamStreamCall, answer: Any) -> None:
        try:
            async for response in call:
                self._requests.put_nowait(answer(response))
        except Exception as e:  # the RPC's status, or a bug in answering: either ends it
            error: BaseException = e
        else:
            error = EOFError("stream ended by the server")
        self.state.streaming = False
        self.observer.ended(self.state, error)


@dataclass(eq=False)
class ZtunnelSim(_Simulated, DeltaClient):
    state: ProxyState = field(default=None)  # type: ignore[assignment]
    observer: Observer = field(default=None)  # type: ignore[assignment]
    tracked: set[str] = field(default_factory=set)
    """Names to report to the observer (shared with the client process, which fills it)."""
    validate: bool = False
    keep: bool = False
    """Hold every resource as ztunnel does (``held``, sent back as
    ``initial_resource_versions`` on reconnect): the soak checks it at the end."""

    def _open(
        self, method: str, request_type: Any, response_type: Any
    ) -> grpc.aio.StreamStreamCall:
        return super()._open(method, request_type, _Counting(response_type, self.state))

    async def start(self) -> None:
        self._begin(set(ZTUNNEL_TYPES))
        await self.connect(
            {t: [] for t in ZTUNNEL_TYPES},
            on_demand=[type_urls.ADDRESS] if self.state.spec.on_demand else [],
        )

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        await self._read_all(call, self._answer)

    def _answer(self, response: Any) -> Any:
        now = time.monotonic()
        state = self.state
        state.messages += 1
        type_url = response.type_url
        initial = type_url in state.awaiting
        error = validate_ztunnel(response) if self.validate or not initial else None
        if not initial:
            tracked = self.tracked
            for resource in response.resources:
                if resource.name in tracked:
                    self.observer.observed(state, resource.name, now, False)
            for name in response.removed_resources:
                if name in tracked:
                    self.observer.observed(state, name, now, True)
        ack = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
        if error is not None:
            ack.error_detail.message = error  # ztunnel NACKs with code 0 and the reasons
            self._nacked(error)
        elif initial:
            self._received_initial(type_url, len(response.resources), now)
        if self.keep:
            self._hold(response, resources=error is None)
        return ack


class _Envoy(_Simulated):
    """Envoy's subscription pattern, shared by the Delta and SotW waypoint sims."""

    tls: bool
    _eds_names: set[str]

    def _initial_types(self) -> dict[str, Sequence[str]]:
        subscriptions: dict[str, Sequence[str]] = {type_urls.CLUSTER: [], type_urls.LISTENER: []}
        if self.tls:
            subscriptions[type_urls.SECRET] = list(SECRET_NAMES)
        return subscriptions

    def _see(self, response: Any, initial: bool, now: float) -> list[str]:
        """Record a response; returns EDS cluster names seen for the first time."""
        self.state.messages += 1
        type_url = response.type_url
        if not initial and type_url in ENVOY_CONFIG_TYPES:
            self.observer.observed(self.state, self.state.spec.audience, now, False)
        if type_url != type_urls.CLUSTER:
            return []
        names = _eds_service_names(response)
        new = sorted(names - self._eds_names)
        self._eds_names |= names
        if new and initial:
            self.state.awaiting.add(type_urls.ENDPOINT)
        return new


def _eds_service_names(response: Any) -> set[str]:
    names = set()
    for entry in response.resources:
        any_message = entry.resource if hasattr(entry, "resource") else entry
        cluster = cluster_pb2.Cluster.FromString(any_message.value)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.add(cluster.eds_cluster_config.service_name or cluster.name)
    return names


@dataclass(eq=False)
class DeltaWaypointSim(_Envoy, DeltaClient):
    state: ProxyState = field(default=None)  # type: ignore[assignment]
    observer: Observer = field(default=None)  # type: ignore[assignment]
    tls: bool = False
    _eds_names: set[str] = field(default_factory=set)

    def _open(
        self, method: str, request_type: Any, response_type: Any
    ) -> grpc.aio.StreamStreamCall:
        return super()._open(method, request_type, _Counting(response_type, self.state))

    async def start(self) -> None:
        subscriptions = self._initial_types()
        self._begin(set(subscriptions))
        if self._eds_names:
            # A restarted stream: like Envoy, ask again for every assignment it watches
            # (``held`` adds their versions), since clusters that did not change will
            # not come back to trigger the request.
            subscriptions[type_urls.ENDPOINT] = sorted(self._eds_names)
        await self.connect(subscriptions)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        await self._read_all(call, self._answer)

    def _answer(self, response: Any) -> Any:
        now = time.monotonic()
        initial = response.type_url in self.state.awaiting
        new = self._see(response, initial, now)
        ack = super()._answer(response)
        if new:  # after this ACK, as Envoy warms clusters before their endpoints
            asyncio.get_running_loop().call_soon(self.subscribe, type_urls.ENDPOINT, new)
        if ack.HasField("error_detail"):
            self._nacked(ack.error_detail.message)
        elif initial:
            self._received_initial(response.type_url, len(response.resources), now)
        return ack


@dataclass(eq=False)
class SotwWaypointSim(_Envoy, SotwClient):
    state: ProxyState = field(default=None)  # type: ignore[assignment]
    observer: Observer = field(default=None)  # type: ignore[assignment]
    tls: bool = False
    _eds_names: set[str] = field(default_factory=set)

    def _open(
        self, method: str, request_type: Any, response_type: Any
    ) -> grpc.aio.StreamStreamCall:
        return super()._open(method, request_type, _Counting(response_type, self.state))

    async def start(self) -> None:
        subscriptions = self._initial_types()
        self._eds_names = set()
        self.last = {}
        self._begin(set(subscriptions))
        await self.connect(subscriptions)

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        await self._read_all(call, self._answer)

    def _answer(self, response: Any) -> Any:
        now = time.monotonic()
        initial = response.type_url in self.state.awaiting
        if self._see(response, initial, now):
            # State of the world: the request names every cluster's endpoints.
            asyncio.get_running_loop().call_soon(
                self.subscribe, type_urls.ENDPOINT, sorted(self._eds_names)
            )
        request = super()._answer(response)
        if request.HasField("error_detail"):
            self._nacked(request.error_detail.message)
        elif initial:
            self._received_initial(response.type_url, len(response.resources), now)
        return request


Sim = ZtunnelSim | DeltaWaypointSim | SotwWaypointSim


def make_sim(
    spec: ProxySpec,
    state: ProxyState,
    channel: grpc.aio.Channel,
    headers: Sequence[tuple[str, str]],
    observer: Observer,
    tracked: set[str],
    *,
    tls: bool,
    validate: bool,
    keep: bool = False,
) -> Sim:
    """``keep``: ztunnels hold their state (waypoint sims always do, as Envoy)."""
    if spec.kind == "ztunnel":
        return ZtunnelSim(
            channel,
            spec.node_id,
            metadata=spec.metadata,
            metadata_headers=headers,
            state=state,
            observer=observer,
            tracked=tracked,
            validate=validate,
            keep=keep,
        )
    cls = DeltaWaypointSim if spec.delta else SotwWaypointSim
    return cls(
        channel,
        spec.node_id,
        metadata=spec.metadata,
        metadata_headers=headers,
        state=state,
        observer=observer,
        tls=tls,
    )
