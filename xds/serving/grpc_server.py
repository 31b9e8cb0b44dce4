"""grpc.aio server construction: transport settings, reflection and health.

Every gRPC port also serves server reflection (so ``grpcurl list``/``describe``
work without proto files) and ``grpc.health.v1.Health``, which reports
SERVING only once the config sources have synced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

_MB = 1024 * 1024


# After max age a connection gets GOAWAY; its streams (ADS streams never end on
# their own) get this long before the connection is closed. istiod's default.
MAX_CONNECTION_AGE_GRACE = 10.0


def server_options(
    *,
    reuse_port: bool,
    max_connection_age: float = 0.0,
    max_connection_age_grace: float = MAX_CONNECTION_AGE_GRACE,
) -> list[tuple[str, int]]:
    """``max_connection_age`` in seconds (0: never); grpc adds +-10% jitter to it, so the
    proxies that connected together do not all reconnect together."""
    age = (
        [
            ("grpc.max_connection_age_ms", int(max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace * 1000)),
        ]
        if max_connection_age > 0
        else []
    )
    return [
        *age,
        # ztunnel pings every 30 s; grpc's default tolerance (one ping per
        # 5 min, 2 strikes) would GOAWAY it. istiod allows a ping every 15 s.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", 16 * _MB),
        ("grpc.max_send_message_length", 512 * _MB),
        # Shared ports only with --workers; otherwise a second server on the
        # same port must fail loudly instead of silently splitting traffic.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


class Readiness(asyncio.Event):
    """An ``Event`` that can also be awaited for being cleared: health reports follow the
    control plane both ways (a failed config source makes it unready again)."""

    def __init__(self) -> None:
        super().__init__()
        self._unready = asyncio.Event()
        self._unready.set()

    def set(self) -> None:
        super().set()
        self._unready.clear()

    def clear(self) -> None:
        super().clear()
        self._unready.set()

    async def wait_unready(self) -> None:
        await self._unready.wait()


class Health:
    """grpc.health.v1 for one server, following the control plane's readiness."""

    def __init__(self, services: Sequence[str]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._services = ["", *services]

    async def follow(self, ready: Readiness) -> None:
        """SERVING while ``ready`` is set, NOT_SERVING while not; runs until cancelled."""
        try:
            while True:
                await self._set(health_pb2.HealthCheckResponse.NOT_SERVING)
                await ready.wait()
                await self._set(health_pb2.HealthCheckResponse.SERVING)
                await ready.wait_unready()
        except asyncio.CancelledError:
            await self.servicer.enter_graceful_shutdown()
            raise

    async def _set(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in self._services:
            await self.servicer.set(service, status)


def build_server(
    handlers: Sequence[grpc.GenericRpcHandler],
    services: Sequence[str],
    *,
    reuse_port: bool = False,
    max_connection_age: float = 0.0,
    max_connection_age_grace: float = MAX_CONNECTION_AGE_GRACE,
) -> tuple[grpc.aio.Server, Health]:
    """A server with ``handlers`` plus reflection and health for ``services``."""
    server = grpc.aio.server(
        options=server_options(
            reuse_port=reuse_port,
            max_connection_age=max_connection_age,
            max_connection_age_grace=max_connection_age_grace,
        )
    )
    server.add_generic_rpc_handlers(tuple(handlers))
    checker = Health(services)
    health_pb2_grpc.add_HealthServicer_to_server(checker.servicer, server)
    reflection.enable_server_reflection(
        [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return server, checker
