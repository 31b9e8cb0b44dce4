"""A client process: one event loop driving its share of the simulated proxies.

The parent talks to it over a ``multiprocessing`` pipe. Every command gets
exactly one reply, except ``ExpectChanges``, which is fire-and-forget so that
applying churn never waits for a busy client process. Each simulated proxy
has its own channel (a unique channel argument and a local subchannel pool
give it its own TCP connection, as real proxies have), and connections are
opened at the rate the parent asks for.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc

from loadtest import consistency
from loadtest.csr import CsrJob, run_csr
from loadtest.pinning import pin
from loadtest.proxies import (
    ENVOY_VERIFIED_TYPES,
    ZTUNNEL_TYPES,
    ProxySpec,
    ProxyState,
    Sim,
    SotwWaypointSim,
    make_sim,
)
from loadtest.tracking import Delivery, Expectation, Tracker
from xds.tasks import cancel_and_wait

MAX_RECEIVE_BYTES = 256 * 1024 * 1024
"""ztunnel accepts 200 MiB; the full state of a 10k-pod mesh is ~4 MB (gRPC's default limit)."""

_BACKOFF = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Endpoint:
    """Where proxies connect, and how they authenticate there."""

    address: str
    tls_root: bytes | None = None
    server_name: str = "istiod.istio-system.svc"
    tokens: dict[str, str] = field(default_factory=dict)
    """Bearer token per identity ("namespace/serviceaccount"), TLS only."""


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    proxies: list[tuple[int, ProxySpec]]
    endpoint: Endpoint
    rate: float  # connections per second from this process
    start_at: float  # time.monotonic()
    keep: bool = False
    """ztunnel sims hold their whole state (for ``Verify``)."""


@dataclass(frozen=True)
class Track:
    keys: frozenset[str]


@dataclass(frozen=True)
class ExpectChanges:
    expectations: list[Expectation]


@dataclass(frozen=True)
class GetStatus:
    details: bool = False


@dataclass(frozen=True)
class Collect:
    pass


@dataclass(frozen=True)
class Disconnect:
    pass


@dataclass(frozen=True)
class RunCsr:
    job: CsrJob


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Reconnect:
    """Close ``count`` streaming proxies (chosen at random) and open them again at once,
    as a proxy restarting its stream does: with ``initial_resource_versions``."""

    count: int


@dataclass(frozen=True)
class Verify:
    """Compare every proxy's state with the expected state of its kind: ``"ztunnel"``
    for every (wildcard) ztunnel, a waypoint's node id for that waypoint."""

    expected: dict[str, consistency.Expected]


@dataclass(frozen=True)
class Diverged:
    proxy: int
    node_id: str
    description: str
    synced: bool = True
    """False: the proxy had no synced stream, so its state was not compared."""


@dataclass
class Status:
    proxies: int = 0
    started: int = 0
    streaming: int = 0
    synced: int = 0
    messages: int = 0
    bytes: int = 0
    initial_bytes: int = 0
    initial_resources: dict[str, int] = field(default_factory=dict)
    """Resources in the first responses, by proxy kind."""
    nacks: int = 0
    first_nack: str = ""
    stream_errors: int = 0
    first_error: str = ""
    reconnects: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    """Stream errors by status and message."""
    outstanding: int = 0
    last_first_sync: float | None = None
    sync_seconds: list[float] = field(default_factory=list)
    """Per proxy, connect to first sync (only with ``GetStatus(details=True)``)."""

    def merge(self, other: Status) -> None:
        for name in (
            "proxies",
            "started",
            "streaming",
            "synced",
            "messages",
            "bytes",
            "initial_bytes",
            "nacks",
            "stream_errors",
            "reconnects",
            "outstanding",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, count in other.initial_resources.items():
            self.initial_resources[kind] = self.initial_resources.get(kind, 0) + count
        for text, count in other.errors.items():
            self.errors[text] = self.errors.get(text, 0) + count
        self.first_nack = self.first_nack or other.first_nack
        self.first_error = self.first_error or other.first_error
        if other.last_first_sync is not None:
            self.last_first_sync = max(self.last_first_sync or 0.0, other.last_first_sync)
        self.sync_seconds.extend(other.sync_seconds)


# -- the process --------------------------------------------------------------------------------


def main(conn: Connection, cpus: frozenset[int] | None = None) -> None:
    """Entry point of a client process (``multiprocessing`` spawn target)."""
    pin(cpus)
    asyncio.run(Worker(conn).serve())


class Worker:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stopped = asyncio.Event()
        self._tracker = Tracker()
        self._states: list[ProxyState] = []
        self._sims: dict[int, Sim] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._credentials: grpc.ChannelCredentials | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._proxy_tasks: set[asyncio.Task[Any]] = set()
        """Connection ramps and reconnects: cancelled by ``Disconnect``."""
        self._reconnects = 0
        self._errors: collections.Counter[str] = collections.Counter()
        self._connected = False

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._on_command)
        self._conn.send("ready")
        await self._stopped.wait()
        loop.remove_reader(self._conn.fileno())
        await self._disconnect()

    # -- commands -------------------------------------------------------------------------

    def _on_command(self) -> None:
        while self._conn.poll():
            command = self._conn.recv()
            self._dispatch(command)

    def _dispatch(self, command: object) -> None:
        match command:
            case ExpectChanges(expectations):
                for expectation in expectations:
                    self._tracker.expect(expectation, self._states)
            case Connect():
                self._connect(command)
                self._conn.send(True)
            case Track(keys):
                self._tracker.track(keys)
                self._conn.send(True)
            case GetStatus(details):
                self._conn.send(self._status(details))
            case Collect():
                deliveries = self._tracker.deliveries()
                self._tracker.clear()
                self._conn.send(deliveries)
            case Disconnect():
                self._spawn(self._reply_when(self._disconnect()))
            case RunCsr(job):
                self._spawn(self._reply_when(run_csr(job)))
            case Reconnect(count):
                self._conn.send(self._restart_some(count))
            case Verify(expected):
                self._conn.send(self._verify(expected))
            case Stop():
                self._conn.send(True)
                self._stopped.set()
            case _:
                self._conn.send(ValueError(f"unknown command {command!r}"))

    async def _reply_when(self, work: Any) -> None:
        try:
            reply = await work
        except Exception as e:
            reply = e
        self._conn.send(True if reply is None else reply)

    def _spawn(self, work: Any, tasks: set[asyncio.Task[Any]] | None = None) -> None:
        group = self._tasks if tasks is None else tasks
        task = asyncio.ensure_future(work)
        group.add(task)
        task.add_done_callback(group.discard)

    # -- connecting -----------------------------------------------------------------------

    def _connect(self, command: Connect) -> None:
        self._connected = True
        if command.endpoint.tls_root is not None:
            self._credentials = grpc.ssl_channel_credentials(command.endpoint.tls_root)
        self._spawn(self._ramp(command), self._proxy_tasks)

    async def _ramp(self, command: Connect) -> None:
        """Open connections at ``rate`` per second, starting at ``start_at``."""
        interval = 1.0 / command.rate if command.rate > 0 else 0.0
        for number, (index, spec) in enumerate(command.proxies):
            due = command.start_at + number * interval
            delay = due - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
            if not self._connected:
                return
            state = ProxyState(index, spec)
            self._states.append(state)
            sim = self._make(state, command.endpoint, validate=number == 0, keep=command.keep)
            self._sims[index] = sim
            await self._start(sim)

    def _make(
        self, state: ProxyState, endpoint: Endpoint, *, validate: bool, keep: bool = False
    ) -> Sim:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.use_local_subchannel_pool", 1),
            ("loadtest.proxy", state.index),
        ]
        headers: Sequence[tuple[str, str]] = ()
        if self._credentials is not None:
            options.append(("grpc.ssl_target_name_override", endpoint.server_name))
            channel = grpc.aio.secure_channel(endpoint.address, self._credentials, options)
            token = endpoint.tokens.get(state.spec.account)
            if token is not None:
                headers = (("authorization", f"Bearer {token}"),)
        else:
            channel = grpc.aio.insecure_channel(endpoint.address, options)
        self._channels.append(channel)
        return make_sim(
            state.spec,
            state,
            channel,
            headers,
            self,
            self._tracker.keys,
            tls=self._credentials is not None,
            validate=validate,
            keep=keep,
        )

    # -- Observer (called by the sims) -----------------------------------------------------

    def observed(self, state: ProxyState, key: str, at: float, removed: bool) -> None:
        self._tracker.observed(state, key, at, removed)

    def synced(self, state: ProxyState, at: float) -> None:
        if state.first_synced_at != at:
            self._tracker.resynced(state, at)

    def ended(self, state: ProxyState, error: BaseException) -> None:
        state.stream_errors += 1
        state.failures += 1
        if isinstance(error, grpc.aio.AioRpcError):
            text = f"{error.code().name}: {error.details()}"
        else:
            text = f"{type(error).__name__}: {error}"
        state.first_error = state.first_error or text[:300]
        self._errors[text[:120]] += 1
        if self._connected:
            self._spawn(self._reconnect(state), self._proxy_tasks)

    async def _reconnect(self, state: ProxyState) -> None:
        """Envoy-like backoff with jitter; the sim keeps its channel."""
        delay = _BACKOFF[min(max(state.failures, 1), len(_BACKOFF)) - 1]
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        if self._connected:
            await self._restart(self._sims[state.index])

    def _restart_some(self, count: int) -> int:
        streaming = [self._sims[s.index] for s in self._states if s.streaming]
        chosen = random.sample(streaming, min(count, len(streaming)))
        for sim in chosen:
            sim.state.streaming = False  # not chosen again before it is back
            self._spawn(self._restart(sim), self._proxy_tasks)
        return len(chosen)

    async def _restart(self, sim: Sim) -> None:
        """Close the sim's stream and open a new one (it keeps its channel and state)."""
        self._reconnects += 1
        await sim.close()
        if self._connected:
            await self._start(sim)

    async def _start(self, sim: Sim) -> None:
        """Open the sim's stream; a failure to even start counts as a stream error."""
        try:
            await sim.start()
        except Exception as e:
            sim.state.streaming = False
            self.ended(sim.state, e)

    # -- the soak's final check -------------------------------------------------------------

    def _verify(self, expected: dict[str, consistency.Expected]) -> list[Diverged]:
        decoder = consistency.Decoder()
        found = []
        for state in self._states:
            sim = self._sims[state.index]
            spec = state.spec
            if not state.streaming or state.synced_at is None:
                waiting = ", ".join(sorted(t.rsplit(".", 1)[-1] for t in state.awaiting))
                found.append(
                    Diverged(
                        state.index,
                        spec.node_id,
                        f"not synced (streaming: {state.streaming}; waiting for: "
                        f"{waiting or 'nothing'}; stream errors: {state.stream_errors}, "
                        f"first: {state.first_error or 'none'})",
                        synced=False,
                    )
                )
                continue
            types: tuple[str, ...]
            if spec.kind == "ztunnel":
                key, types = "ztunnel", ZTUNNEL_TYPES
            else:
                key, types = spec.node_id, ENVOY_VERIFIED_TYPES
            divergence = consistency.compare(
                _held(sim), expected.get(key, {}), decoder, types=types
            )
            if divergence:
                found.append(Diverged(state.index, spec.node_id, divergence.describe()))
        return found

    # -- status and teardown ----------------------------------------------------------------

    def _status(self, details: bool) -> Status:
        status = Status(
            proxies=len(self._states),
            reconnects=self._reconnects,
            errors=dict(self._errors),
            outstanding=self._tracker.outstanding(),
        )
        for state in self._states:
            status.started += 1
            status.streaming += state.streaming
            status.synced += state.synced_at is not None and state.streaming
            status.messages += state.messages
            status.bytes += state.bytes
            status.initial_bytes += state.initial_bytes
            kind = state.spec.kind
            status.initial_resources[kind] = (
                status.initial_resources.get(kind, 0) + state.initial_resources
            )
            status.nacks += state.nacks
            status.first_nack = status.first_nack or state.first_nack
            status.stream_errors += state.stream_errors
            status.first_error = status.first_error or state.first_error
            if state.first_synced_at is not None:
                status.last_first_sync = max(status.last_first_sync or 0.0, state.first_synced_at)
                if details and state.started_at is not None:
                    status.sync_seconds.append(state.first_synced_at - state.started_at)
        return status

    async def _disconnect(self) -> None:
        self._connected = False
        for task in list(self._proxy_tasks):
            await cancel_and_wait(task)
        sims, channels = list(self._sims.values()), self._channels
        self._sims, self._channels, self._states = {}, [], []
        self._reconnects = 0
        self._errors.clear()
        self._tracker.clear()
        for chunk in range(0, len(sims), 200):
            await asyncio.gather(
                *(sim.close() for sim in sims[chunk : chunk + 200]), return_exceptions=True
            )
        for chunk in range(0, len(channels), 200):
            await asyncio.gather(
                *(c.close() for c in channels[chunk : chunk + 200]), return_exceptions=True
            )


def _held(sim: Sim) -> dict[str, dict[str, bytes]]:
    """What a sim has applied, by type URL and name."""
    if isinstance(sim, SotwWaypointSim):
        return {
            type_url: {
                consistency.sotw_name(type_url, r.value): r.value for r in response.resources
            }
            for type_url, response in sim.last.items()
        }
    return {
        type_url: {name: held.body for name, held in resources.items()}
        for type_url, resources in sim.held.items()
    }


def merge_deliveries(batches: Sequence[Sequence[Delivery]]) -> dict[int, Delivery]:
    """Per change id, the deliveries of every client process added up."""
    merged: dict[int, Delivery] = {}
    for batch in batches:
        for delivery in batch:
            total = merged.setdefault(delivery.change_id, Delivery(delivery.change_id))
            total.merge(delivery)
    return merged
