"""The AggregatedDiscoveryService over grpc.aio: moves bytes between sockets and sessions.

Each stream runs one loop that takes, in arrival order, the client's requests
and the store's change notifications, feeds them to the stream's session, and
writes the responses. Responses are pre-encoded bytes (identity serializer), so
no protobuf message is built per stream.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from xds.resources import Resource
from xds.security.authn import Caller
from xds.serving.delta import DeltaResponse, DeltaSession, SharedUpdates
from xds.serving.node import InvalidNode, ProxyNode, parse_node
from xds.serving.ratelimit import StreamRateLimit
from xds.serving.session import (
    Forbidden,
    ProtocolError,
    Received,
    Request,
    RequestKind,
    TypeFilter,
    TypeStatus,
)
from xds.serving.sotw import SotwResponse, SotwSession
from xds.serving.store import ConfigStore, Touched, Watcher

log = logging.getLogger("xds.ads")

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

Response = DeltaResponse | SotwResponse
Session = DeltaSession | SotwSession


@dataclass(frozen=True)
class Binding:
    """Where a proxy's config comes from and what it may ask for."""

    scope: str
    type_filter: TypeFilter
    # Types served from another scope (type URL -> scope), e.g. secrets.
    type_scopes: Mapping[str, str] = field(default_factory=dict)
    # Called once when the stream ends (e.g. to stop rotating its secrets).
    release: Callable[[], None] | None = None
    # Types this port never serves but that a stock proxy asks for anyway (a
    # waypoint's SDS on the plaintext port): answered as absent, with a warning,
    # so that the rest of its config still flows.
    withheld: Mapping[str, str] = field(default_factory=dict)
    # Per type, groups of resources a client that subscribes by name gets unasked (an
    # on-demand ztunnel: the workloads of its node). See ``Resource.groups``.
    standing_groups: Mapping[str, frozenset[str]] = field(default_factory=dict)


Binder = Callable[[ProxyNode, Caller | None], Awaitable[Binding]]
"""Decides a stream's scope from its node and its authenticated caller (None on an
unauthenticated port); raises ``Forbidden`` for a proxy it will not serve and
``InvalidNode`` for one it cannot place."""

Authenticate = Callable[[grpc.aio.ServicerContext], Awaitable[Caller | None]]
"""The caller behind a call (``str()`` of it is logged and shown), or None on an
unauthenticated port. Raises ``Unauthenticated``."""


class Unauthenticated(Exception):
    """Ends the call with UNAUTHENTICATED; the message must never contain credentials."""


async def no_authentication(context: grpc.aio.ServicerContext) -> None:
    return None


class AdsObserver(Protocol):
    """Hooks for metrics; every method must be cheap and must not raise."""

    def connected(self, connection: Connection) -> None: ...
    def disconnected(self, connection: Connection) -> None: ...
    def received(self, connection: Connection, received: Received) -> None: ...
    def sent(
        self, connection: Connection, response: Response, size: int, origin: float | None
    ) -> None:
        """A response was written; ``origin`` is the change time for pushes, else None."""

    def refused(self, code: grpc.StatusCode) -> None:
        """A stream was refused before it was served (authentication, identity, node)."""


class NullObserver:
    def connected(self, connection: Connection) -> None:
        pass

    def disconnected(self, connection: Connection) -> None:
        pass

    def received(self, connection: Connection, received: Received) -> None:
        pass

    def sent(
        self, connection: Connection, response: Response, size: int, origin: float | None
    ) -> None:
        pass

    def refused(self, code: grpc.StatusCode) -> None:
        pass


FIRST_REQUEST_TIMEOUT = 30.0
"""Seconds a new stream may take to send its first request (proxies send it at once)."""
WRITE_TIMEOUT = 30.0
"""Seconds one response may wait to be written (HTTP/2 flow control: the client is not
reading). Past it the stream is closed; the client reconnects and resyncs. Without it a
proxy that stops reading would hold a push slot forever, delaying everyone's pushes."""

# A refused stream is logged at most once per (peer host, status) in this many seconds:
# a misconfigured proxy retrying in a loop must not flood the log.
REFUSAL_LOG_INTERVAL = 10.0
_LOGGED_NODE_ID = 200  # characters: node ids are the client's, and may be of any size


def _peer_host(peer: str) -> str:
    """``ipv4:10.0.0.1:5678`` -> ``ipv4:10.0.0.1`` (the port changes on every retry)."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class RefusalLog:
    """Warns about refused streams, rate-limited per (peer host, status)."""

    def __init__(
        self, interval: float = REFUSAL_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def refused(
        self, code: grpc.StatusCode, reason: str, *, peer: str, node_id: str, identity: str
    ) -> bool:
        """Log this refusal unless one like it was logged lately; returns whether it was."""
        key = (_peer_host(peer), code.name)
        now = self._clock()
        last, suppressed = self._last.get(key, (-self._interval, 0))
        if now - last < self._interval:
            self._last[key] = (last, suppressed + 1)
            return False
        if len(self._last) > 10_000:  # bounded: many peers, each retrying
            self._last.clear()
        self._last[key] = (now, 0)
        log.warning(
            "stream refused",
            extra={
                "code": code.name,
                "reason": reason,
                "peer": peer,
                "proxy": node_id[:_LOGGED_NODE_ID],
                "identity": identity,
                "suppressed": suppressed,
            },
        )
        return True


_connection_ids = itertools.count(1)
_debug_nonces = itertools.count(1)

DebugView = Callable[["Connection", Sequence[str]], Sequence[Resource]]
"""Answers a debug type (e.g. istio.io/debug/syncz) for the requesting connection."""


@dataclass(eq=False)
class Connection:
    """One connected proxy stream, as the debug endpoints and metrics see it."""

    node: ProxyNode
    identity: str | None  # the authenticated caller, for display
    binding: Binding
    session: Session
    peer: str
    delta: bool
    id: str = field(default_factory=lambda: f"conn-{next(_connection_ids)}")
    # The store's changes since the last push, as it published them (shared by every
    # stream: most pushes carry exactly one, which is then used as it is).
    _pending: list[Touched] = field(default_factory=list)
    _pending_origin: float | None = None
    # One inbox per stream, in arrival order: the client's requests (put by
    # the reader task), at most one PUSH (put by ``touched``), then END, an error
    # or SHUTDOWN.
    _inbox: asyncio.Queue[Request | Signal | BaseException] = field(default_factory=asyncio.Queue)
    _push_queued: bool = False
    # Nonces of debug responses not yet acknowledged: a request echoing one is an ACK.
    _unacked_debug: set[str] = field(default_factory=set)
    # The write in progress, for the service's watchdog: since when, and in which task
    # (cancelled, with ``stalled`` set, when the client stops reading).
    writing_since: float | None = None
    task: asyncio.Task[Any] | None = None
    stalled: bool = False

    @property
    def scope(self) -> str:
        return self.binding.scope

    @property
    def statuses(self) -> dict[str, TypeStatus]:
        return {t: w.status for t, w in self.session.watches.items()}

    def touched(self, change: Touched, origin: float) -> None:
        """Store callback: remember what changed; the stream loop pushes it."""
        self._pending.append(change)
        if self._pending_origin is None or origin < self._pending_origin:
            self._pending_origin = origin
        if not self._push_queued:
            self._push_queued = True
            self._inbox.put_nowait(Signal.PUSH)

    def debug_sent(self, nonce: str) -> None:
        """A debug response went out with ``nonce`` (a request echoing it is an ACK)."""
        if len(self._unacked_debug) < 64:  # clients that never ACK must not grow it
            self._unacked_debug.add(nonce)

    def debug_acked(self, nonce: str) -> bool:
        """Whether ``nonce`` ACKs a debug response of ours (forgotten once it does)."""
        if nonce in self._unacked_debug:
            self._unacked_debug.discard(nonce)
            return True
        return False

    def shut_down(self) -> None:
        """Ask the stream loop to end the stream cleanly (``SHUTDOWN_MESSAGE``)."""
        self._inbox.put_nowait(Signal.SHUTDOWN)

    def received(self, item: Request | Signal | BaseException) -> None:
        """The reader task's side: a request, ``Signal.END``, or the transport's error."""
        self._inbox.put_nowait(item)

    async def next_event(self) -> Request | Signal | BaseException:
        """The stream loop's side: the next request, signal or error, in arrival order."""
        return await self._inbox.get()

    def take_pending(self) -> tuple[Mapping[str, Collection[str]], float | None]:
        """What changed since the last push, and when the oldest of it happened."""
        changes, self._pending = self._pending, []
        origin, self._pending_origin = self._pending_origin, None
        self._push_queued = False
        if len(changes) == 1:
            return changes[0], origin
        merged: dict[str, set[str]] = {}
        for change in changes:
            for type_url, names in change.items():
                merged.setdefault(type_url, set()).update(names)
        return merged, origin


SMALL_PUSH_BYTES = 64 << 10
"""A push up to this size is written at once; larger ones wait for the push throttle."""


class Signal(enum.Enum):
    """What a stream loop is told besides the client's requests."""

    PUSH = "push"  # the store changed something this stream watches
    END = "end"  # the client closed its side
    SHUTDOWN = "shutdown"  # the control plane is stopping


SHUTDOWN_MESSAGE = "transport is closing: the control plane is shutting down"
"""ztunnel retries at once (resetting its backoff) only after UNAVAILABLE whose
message contains "transport is closing" or "received prior goaway"; any other
ending makes its reconnect delay grow. Envoy reconnects after any ending."""


class SlowClient(Exception):
    """A response could not be written within the write timeout: the client is not reading."""


class ShuttingDown(Exception):
    """Ends a stream with UNAVAILABLE and ``SHUTDOWN_MESSAGE``."""


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self.closing = False

    def close_all(self) -> None:
        """Ask every open stream to end cleanly; streams opened later are refused."""
        self.closing = True
        for connection in self._connections.values():
            connection.shut_down()

    def add(self, connection: Connection) -> None:
        self._connections[connection.id] = connection

    def remove(self, connection: Connection) -> None:
        self._connections.pop(connection.id, None)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def __len__(self) -> int:
        return len(self._connections)


class AdsService:
    """Serves both ADS variants for one listening port."""

    def __init__(
        self,
        store: ConfigStore,
        binder: Binder,
        *,
        ready: asyncio.Event,
        connections: ConnectionRegistry,
        authenticate: Authenticate = no_authentication,
        observer: AdsObserver | None = None,
        push_limit: asyncio.Semaphore | None = None,
        debug: Mapping[str, DebugView] | None = None,
        control_plane: str = "",
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        stream_limit: StreamRateLimit | None = None,
    ) -> None:
        """``debug`` maps debug type URLs to views computed per request;
        ``control_plane`` is the ``control_plane.identifier`` of SotW responses;
        a stream that sends nothing within ``first_request_timeout`` seconds is ended."""
        self._store = store
        self._shared_updates = SharedUpdates()  # see DeltaSession._shared_push
        self._binder = binder
        self._ready = ready
        self._authenticate = authenticate
        self.connections = connections
        self._observer: AdsObserver = observer or NullObserver()
        # Caps concurrent large pushes (istiod's PILOT_PUSH_THROTTLE) so that reading
        # ACKs and accepting streams keep their share of the event loop, and gRPC does
        # not hold a copy of a large push for every stream at once.
        self._push_limit = push_limit or asyncio.Semaphore(25)
        self._debug = dict(debug or {})
        self._control_plane = control_plane
        self._refusals = RefusalLog()
        self._first_request_timeout = first_request_timeout
        self._write_timeout = write_timeout
        self._stream_limit = stream_limit
        self._watchdog: asyncio.Task[None] | None = None

    def handler(self) -> grpc.GenericRpcHandler:
        identity: Callable[[bytes], bytes] = _identity
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._sotw,
                    request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                    response_serializer=identity,
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._delta,
                    request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                    response_serializer=identity,
                ),
            },
        )

    async def _sotw(
        self,
        requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await self._serve(requests, context, delta=False)

    async def _delta(
        self,
        requests: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await self._serve(requests, context, delta=True)

    async def _serve(
        self, requests: AsyncIterator[Request], context: grpc.aio.ServicerContext, *, delta: bool
    ) -> None:
        if self.connections.closing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_MESSAGE)
        if not self._ready.is_set():
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                "control plane not ready: config sources have not synced yet",
            )
        if self._stream_limit is not None and not await self._stream_limit.acquire():
            await self._refuse(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many new streams: at most {self._stream_limit.rate:g} per "
                "second are accepted; retry with backoff",
            )
        try:
            caller = await self._authenticate(context)
        except Unauthenticated as e:
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, str(e))
        who = "" if caller is None else str(caller)
        try:
            # A stream that never says who it is would hold a slot (and be invisible in
            # /debug/connections, which lists identified proxies) forever.
            first = await asyncio.wait_for(anext(aiter(requests)), self._first_request_timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            await self._refuse(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"no request within {self._first_request_timeout:g} s of opening the stream",
                identity=who,
            )
        claimed = first.node.id if first.HasField("node") else ""
        if not claimed:
            await self._refuse(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first request on a stream must carry node.id",
                identity=who,
            )
        try:
            node = parse_node(first.node)
            binding = await self._binder(node, caller)
        except InvalidNode as e:
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(e), claimed, who)
        except Forbidden as e:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, str(e), claimed, who)

        view = self._store.view(binding.scope, binding.type_scopes)
        session: Session = (
            DeltaSession(
                view,
                type_filter=binding.type_filter,
                standing_groups=binding.standing_groups,
                shared=self._shared_updates,
            )
            if delta
            else SotwSession(view, type_filter=binding.type_filter)
        )
        connection = Connection(
            node, None if caller is None else str(caller), binding, session, context.peer(), delta
        )
        unwatch = self._watch(binding, connection)
        self.connections.add(connection)
        if self.connections.closing:  # the binder awaited while shutdown began
            connection.shut_down()
        self._observer.connected(connection)
        log.info(
            "connected",
            extra={"conn": connection.id, "proxy": node.id, "scope": binding.scope, "delta": delta},
        )
        try:
            await self._run(connection, first, requests, context)
        except ProtocolError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except Forbidden as e:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except ShuttingDown:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTDOWN_MESSAGE)
        except SlowClient as e:
            log.warning(
                "client not reading; stream closed",
                extra={"conn": connection.id, "proxy": node.id, "reason": str(e)},
            )
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        finally:
            unwatch()
            if binding.release is not None:
                binding.release()
            self.connections.remove(connection)
            self._observer.disconnected(connection)
            log.info("disconnected", extra={"conn": connection.id, "proxy": node.id})

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        reason: str,
        node_id: str = "",
        identity: str = "",
    ) -> NoReturn:
        """End a stream that is not served: logged (rate-limited), counted, aborted."""
        self._refusals.refused(
            code, reason, peer=context.peer(), node_id=node_id, identity=identity
        )
        self._observer.refused(code)
        await context.abort(code, reason)
        # abort raises; NoReturn tells type checkers that _serve goes no further (its
        # caller, first request and binding are then always bound).
        raise AssertionError("grpc's abort returned")

    def _watch(self, binding: Binding, connection: Connection) -> Callable[[], None]:
        """Watch every scope the stream reads; each only for the types it supplies."""
        moved = frozenset(binding.type_scopes)
        unwatches = [self._store.watch(binding.scope, _without(moved, connection.touched))]
        for scope in set(binding.type_scopes.values()):
            types = frozenset(t for t, s in binding.type_scopes.items() if s == scope)
            unwatches.append(self._store.watch(scope, _only(types, connection.touched)))

        def unwatch() -> None:
            for undo in unwatches:
                undo()

        return unwatch

    async def _run(
        self,
        connection: Connection,
        first: Request,
        requests: AsyncIterator[Request],
        context: grpc.aio.ServicerContext,
    ) -> None:
        connection.task = asyncio.current_task()
        self._watch_writes()
        await self._handle(connection, first, context)
        reader = asyncio.create_task(self._read_into(requests, connection))
        try:
            while True:
                item = await connection.next_event()
                if item is Signal.END:
                    return
                if item is Signal.SHUTDOWN:
                    raise ShuttingDown
                if item is Signal.PUSH:
                    await self._push(connection, context)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    await self._handle(connection, item, context)
        finally:
            reader.cancel()

    async def _handle(
        self, connection: Connection, request: Request, context: grpc.aio.ServicerContext
    ) -> None:
        view = self._debug.get(request.type_url)
        if view is not None:
            await self._answer_debug(connection, request, view, context)
            return
        reason = connection.binding.withheld.get(request.type_url)
        if reason is not None:
            await self._answer_withheld(connection, request, reason, context)
            return
        received, responses = _receive(connection.session, request)
        self._note(connection, received)
        for response in responses:
            await self._write(connection, response, context, origin=None)

    def _note(self, connection: Connection, received: Received) -> None:
        self._observer.received(connection, received)
        if received.kind is RequestKind.NACK:
            log.warning(
                "NACK",
                extra={
                    "conn": connection.id,
                    "proxy": connection.node.id,
                    "type": received.type_url,
                    "error": received.error,
                },
            )
        elif received.kind is RequestKind.ACK and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "ACK",
                extra={
                    "conn": connection.id,
                    "proxy": connection.node.id,
                    "type": received.type_url,
                },
            )

    def _settled_where_read(self, connection: Connection, request: Request) -> bool:
        """Handle a Delta ACK or NACK that changes no subscription in the reader task,
        without waking the stream loop (most requests are these: one per push per
        stream). Nothing is ever written in answer to one, so the order of writes stays
        the stream loop's. Anything else (a first request for a type, a subscription
        change, a debug or withheld type) returns False and goes through the loop."""
        if (
            not isinstance(request, discovery_pb2.DeltaDiscoveryRequest)
            or not request.response_nonce
            or request.resource_names_subscribe
            or request.resource_names_unsubscribe
            or request.type_url not in connection.session.watches
        ):
            return False
        received, responses = _receive(connection.session, request)
        assert not responses, "an ACK without names is never answered"
        self._note(connection, received)
        return True

    async def _read_into(self, requests: AsyncIterator[Request], connection: Connection) -> None:
        """Move the client's requests into the stream's inbox (but settle plain ACKs on
        the spot); then the end, or the error."""
        try:
            async for request in requests:
                try:
                    settled = self._settled_where_read(connection, request)
                except Exception as error:  # a request the session refuses: end with it
                    connection.received(error)
                    return
                if not settled:
                    connection.received(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the transport failed: let the stream loop end with it
            connection.received(error)
            return
        connection.received(Signal.END)

    async def _answer_debug(
        self,
        connection: Connection,
        request: Request,
        view: DebugView,
        context: grpc.aio.ServicerContext,
    ) -> None:
        """Debug types are computed per request and never pushed.

        istioctl puts a nonce of its own on every request, the first one included
        (``ResponseNonce = time.Now().String()``), and never ACKs: only a nonce we
        issued marks an ACK, which needs no answer."""
        if connection.debug_acked(request.response_nonce):
            return
        denial = connection.binding.type_filter(request.type_url)
        if denial is not None:
            raise Forbidden(denial)
        names = list(
            request.resource_names_subscribe
            if isinstance(request, discovery_pb2.DeltaDiscoveryRequest)
            else request.resource_names
        )
        resources = view(connection, names)
        nonce = f"debug-{next(_debug_nonces)}"
        connection.debug_sent(nonce)
        response: Response
        if connection.delta:
            response = DeltaResponse(request.type_url, nonce, list(resources), [])
        else:
            response = SotwResponse(
                request.type_url, nonce, nonce, list(resources), self._control_plane
            )
        await self._write(connection, response, context, origin=None)

    async def _answer_withheld(
        self,
        connection: Connection,
        request: Request,
        reason: str,
        context: grpc.aio.ServicerContext,
    ) -> None:
        if request.response_nonce:
            return  # an ACK of our empty answer
        log.warning(
            "withheld",
            extra={
                "conn": connection.id,
                "proxy": connection.node.id,
                "type": request.type_url,
                "reason": reason,
            },
        )
        nonce = f"withheld-{next(_debug_nonces)}"
        response: Response
        if isinstance(request, discovery_pb2.DeltaDiscoveryRequest):
            names = [n for n in request.resource_names_subscribe if n != "*"]
            response = DeltaResponse(request.type_url, nonce, [], names)
        else:
            response = SotwResponse(request.type_url, nonce, nonce, [])
        await self._write(connection, response, context, origin=None)

    async def _push(self, connection: Connection, context: grpc.aio.ServicerContext) -> None:
        pending, origin = connection.take_pending()
        if not pending:
            return
        responses = [(r, r.encode()) for r in connection.session.push(pending, origin)]
        if sum(len(data) for _, data in responses) <= SMALL_PUSH_BYTES:
            # The common push (a few changed resources to every stream) goes straight
            # out: queueing each of 1,000 streams behind the throttle only adds a wake-up.
            for response, data in responses:
                await self._write(connection, response, context, origin=origin, data=data)
            return
        async with self._push_limit:
            for response, data in responses:
                await self._write(connection, response, context, origin=origin, data=data)

    async def _write(
        self,
        connection: Connection,
        response: Response,
        context: grpc.aio.ServicerContext,
        *,
        origin: float | None,
        data: bytes | None = None,
    ) -> None:
        if data is None:
            data = response.encode()
        # Timed by the watchdog (``_watch_writes``), not a timeout scope per write: on the
        # push path, that was a timer handle made and cancelled per stream and push.
        connection.writing_since = time.monotonic()
        try:
            await context.write(data)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not connection.stalled or task is None or task.uncancel():
                raise  # a cancellation of our own caller, not (only) the watchdog's
            raise SlowClient(
                f"a {len(data)}-byte response waited {self._write_timeout:g} s "
                "to be written: the client is not reading its stream; reconnect "
                "to resync"
            ) from None
        finally:
            connection.writing_since = None
        self._observer.sent(connection, response, len(data), origin)

    def _watch_writes(self) -> None:
        """Start the watchdog of stalled writes, if it is not running."""
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._end_stalled_writes(), name="write-watchdog")

    async def _end_stalled_writes(self) -> None:
        """Cancel each stream whose write has waited more than the write timeout (the
        client stopped reading); ends when no stream is left (the next one restarts it)."""
        interval = max(0.05, self._write_timeout / 4)
        while self.connections:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in self.connections:
                since = connection.writing_since
                if (
                    since is not None
                    and now - since > self._write_timeout
                    and not connection.stalled
                    and connection.task is not None
                ):
                    connection.stalled = True
                    connection.task.cancel()


def _identity(data: bytes) -> bytes:
    return data


def _receive(session: Session, request: Request) -> tuple[Received, Sequence[Response]]:
    """Feed a request to the session of its variant: a stream's handler (``_sotw`` or
    ``_delta``) decides both its session and the type its requests are decoded as."""
    if isinstance(session, DeltaSession):
        assert isinstance(request, discovery_pb2.DeltaDiscoveryRequest)
        return session.receive(request)
    assert isinstance(request, discovery_pb2.DiscoveryRequest)
    return session.receive(request)


def _without(types: frozenset[str], watcher: Watcher) -> Watcher:
    if not types:
        return watcher

    def filtered(change: Touched, origin: float) -> None:
        kept = {t: n for t, n in change.items() if t not in types}
        if kept:
            watcher(kept, origin)

    return filtered


def _only(types: frozenset[str], watcher: Watcher) -> Watcher:
    def filtered(change: Touched, origin: float) -> None:
        kept = {t: n for t, n in change.items() if t in types}
        if kept:
            watcher(kept, origin)

    return filtered
