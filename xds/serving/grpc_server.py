"""grpc.aio server construction with the transport settings proxies need."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

_MB = 1024 * 1024


def server_options(*, reuse_port: bool) -> list[tuple[str, int]]:
    return [
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


def build_server(handlers: Sequence[grpc.GenericRpcHandler], *,
                 reuse_port: bool = False) -> grpc.aio.Server:
    server = grpc.aio.server(options=server_options(reuse_port=reuse_port))
    server.add_generic_rpc_handlers(tuple(handlers))
    return server
