"""The floor: the least any Python gRPC server could do for the same proxies, measured alongside.

A bare ``grpc.aio`` server (same transport options as ours) that serves
Delta ADS to the same simulated proxies from pre-serialized bytes: on a
stream's first request for a type it writes that type's full state
(serialized once, at start), and for a batch of changes it serializes one
``DeltaDiscoveryResponse`` per type and writes the same bytes to every
stream. ACKs are read and dropped. No config parsing, translation, diffing,
per-stream protocol state or metrics.

So that "convergence / floor" compares like with like, the floor keeps the
two delays that are configuration rather than work: it picks up changes on
a tick of the file source's poll interval, and pushes them
``debounce_after`` seconds later. That is the debounce's fixed cost and
nothing more: unlike a quiet-period debouncer, the floor never holds a batch
back because more changes keep arriving. The one thing it does beyond
writing is backpressure: a push waits until the previous one has been
written to every stream, and whatever arrived meanwhile goes out with it.
Without that, sustained churn at a short poll interval makes even the bare
server queue more messages than gRPC can write. Its bare fan-out time (push
issued until each ACK) is reported separately.

Runs in its own process (``run`` below); the parent talks to it over a pipe.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from loadtest import mesh, meshgen
from loadtest.pinning import pin
from xds.model import MeshStore, parse_object
from xds.resources import Resource
from xds.serving.delta import DeltaResponse
from xds.serving.grpc_server import server_options
from xds.translate.ztunnel import ZtunnelTranslator

_Item = tuple[bytes, bool] | None
"""A message for one stream and whether it is a push (None ends the stream)."""

_METHOD = "DeltaAggregatedResources"
_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


@dataclass(frozen=True)
class FloorSetup:
    spec: meshgen.MeshSpec
    routes: int
    poll_interval: float
    debounce_after: float
    ca_dir: Path | None = None
    """Serve TLS with a serving certificate from this CA (as the server's TLS port does)."""


@dataclass(frozen=True)
class FloorChange:
    type_url: str
    name: str
    remove: bool


@dataclass(frozen=True)
class FloorPush:
    issued_at: float
    names: tuple[str, ...]


@dataclass(frozen=True)
class Apply:
    changes: list[FloorChange]


@dataclass(frozen=True)
class GetPushes:
    pass


@dataclass(frozen=True)
class Stop:
    pass


def run(setup: FloorSetup, conn: Connection, cpus: frozenset[int] | None = None) -> None:
    """Process entry point: serve until told to stop."""
    pin(cpus)
    asyncio.run(Floor(setup, conn).serve())


def full_state(setup: FloorSetup) -> dict[str, list[Resource]]:
    """The mesh's ztunnel resources by type, built by the real translator once."""
    store = MeshStore()
    objects = [
        o
        for o in (parse_object(d) for d in mesh.manifests(setup.spec, setup.routes))
        if o is not None
    ]
    store.apply(objects)
    state: dict[str, list[Resource]] = {}
    for update in ZtunnelTranslator().translate(store, None):
        state.setdefault(update.type_url, []).extend(update.upserts)
    return state


class Floor:
    def __init__(self, setup: FloorSetup, conn: Connection) -> None:
        self._setup = setup
        self._conn = conn
        self._streams: set[asyncio.Queue[_Item]] = set()
        self._initial: dict[str, bytes] = {}
        self._bodies: dict[str, bytes] = {}
        self._template: dict[str, bytes] = {}
        self._pending: list[FloorChange] = []
        self._ready: list[FloorChange] = []
        self._has_ready = asyncio.Event()
        self._unwritten = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._pushes: list[FloorPush] = []
        self._nonces = itertools.count(1)
        self._stopped = asyncio.Event()

    async def serve(self) -> None:
        for type_url, resources in full_state(self._setup).items():
            self._initial[type_url] = DeltaResponse(type_url, "floor-0", resources, []).encode()
            self._bodies.update((r.name, r.body) for r in resources)
            self._template[type_url] = resources[-1].body
        server = grpc.aio.server(options=server_options(reuse_port=False))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    _SERVICE,
                    {
                        _METHOD: grpc.stream_stream_rpc_method_handler(
                            self._delta,
                            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                            response_serializer=_identity,
                        )
                    },
                ),
            )
        )
        port = self._bind(server)
        await server.start()
        tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._pusher())]
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._on_command)
        self._conn.send(("ready", port))
        await self._stopped.wait()
        loop.remove_reader(self._conn.fileno())
        for task in tasks:
            task.cancel()
        for queue in list(self._streams):
            queue.put_nowait(None)
        await server.stop(1)
        self._conn.send(True)

    def _bind(self, server: grpc.aio.Server) -> int:
        if self._setup.ca_dir is None:
            return int(server.add_insecure_port("127.0.0.1:0"))
        from xds.security.ca import CertificateAuthority
        from xds.security.ca_files import CaDirectory
        from xds.security.serving_tls import ServingCertificate, istiod_dns_names

        ca = CertificateAuthority(CaDirectory(self._setup.ca_dir).load())
        credentials = ServingCertificate(ca, istiod_dns_names()).server_credentials()
        return int(server.add_secure_port("127.0.0.1:0", credentials))

    def _on_command(self) -> None:
        while self._conn.poll():
            match self._conn.recv():
                case Apply(changes):
                    self._pending.extend(changes)
                case GetPushes():
                    self._conn.send(list(self._pushes))
                case Stop():
                    self._stopped.set()

    async def _poll(self) -> None:
        """Take the changes that arrived on each poll tick."""
        while True:
            await asyncio.sleep(self._setup.poll_interval)
            if self._pending:
                self._ready.extend(self._pending)
                self._pending = []
                self._has_ready.set()

    async def _pusher(self) -> None:
        """Push ``debounce_after`` after a tick brought changes, once the last push is out."""
        while True:
            await self._has_ready.wait()
            await asyncio.sleep(self._setup.debounce_after)
            await self._drained.wait()
            changes, self._ready = self._ready, []
            self._has_ready.clear()
            self._push(changes)

    def _written(self, count: int) -> None:
        self._unwritten -= count
        if self._unwritten <= 0:
            self._unwritten = 0
            self._drained.set()

    def _push(self, changes: list[FloorChange]) -> None:
        latest: dict[tuple[str, str], FloorChange] = {}
        for change in changes:
            latest[(change.type_url, change.name)] = change
        by_type: dict[str, tuple[list[Resource], list[str]]] = {}
        for (type_url, name), change in latest.items():
            upserts, removed = by_type.setdefault(type_url, ([], []))
            if change.remove:
                removed.append(name)
            else:
                body = self._bodies.get(name, self._template.get(type_url, b""))
                upserts.append(Resource(type_url, name, body))
        issued_at = time.monotonic()
        for type_url, (upserts, removed) in by_type.items():
            data = DeltaResponse(type_url, f"floor-{next(self._nonces)}", upserts, removed).encode()
            for queue in self._streams:
                queue.put_nowait((data, True))
                self._unwritten += 1
        if self._unwritten:
            self._drained.clear()
        self._pushes.append(FloorPush(issued_at, tuple(name for _, name in latest)))

    async def _delta(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._streams.add(queue)
        reader = asyncio.ensure_future(self._read(requests, queue))
        try:
            while (item := await queue.get()) is not None:
                data, pushed = item
                await context.write(data)
                if pushed:
                    self._written(1)
        finally:
            self._streams.discard(queue)
            reader.cancel()
            left = [i for i in (queue.get_nowait() for _ in range(queue.qsize())) if i and i[1]]
            self._written(len(left))

    async def _read(self, requests: AsyncIterator[Any], queue: asyncio.Queue[_Item]) -> None:
        answered: set[str] = set()
        try:
            async for request in requests:
                if request.response_nonce or request.type_url in answered:
                    continue  # an ACK, or a subscription change the floor ignores
                answered.add(request.type_url)
                queue.put_nowait(
                    (
                        self._initial.get(request.type_url)
                        or DeltaResponse(request.type_url, "floor-0", [], []).encode(),
                        False,
                    )
                )
        finally:
            queue.put_nowait(None)


def _identity(data: bytes) -> bytes:
    return data
