"""LDS for a waypoint: which listeners each mode has (waypoint.md §3, §10).

HBONE mode (an istio-waypoint): ``connect_terminate`` (the HBONE server on
15008), ``main_internal`` (L7) and ``connect_originate`` (the HBONE client).
PROXY mode: ztunnel terminates HBONE and hands the connection over with a
PROXY v2 header, so ``proxy_inbound`` (main_internal's chains on a real
socket) replaces all three, and ztunnel also originates. Sandwich mode is an ordinary
gateway; see ``sandwich.py``.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from xds.translate.waypoint import filters, names
from xds.translate.waypoint.inputs import WaypointConfig, WaypointMode
from xds.translate.waypoint.main_internal import build_main_internal, build_proxy_inbound
from xds.translate.waypoint.protos import boolean, duration, typed, uint32
from xds.translate.waypoint.sandwich import build_listeners as sandwich_listeners
from xds.translate.waypoint.tls import downstream_hbone_socket


def build_listeners(config: WaypointConfig) -> list[listener_pb2.Listener]:
    mode = config.identity.mode
    if mode is WaypointMode.SANDWICH:
        return sandwich_listeners(config)
    if mode is WaypointMode.PROXY:
        return [build_proxy_inbound(config)]
    return [
        connect_terminate(config.identity.trust_domain),
        build_main_internal(config),
        connect_originate(),
    ]


def _socket_address(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=host, port_value=port)
    )


def connect_terminate(trust_domain: str) -> listener_pb2.Listener:
    """The HBONE server: CONNECT over mTLS on 0.0.0.0:15008, handed to main_internal."""
    route_config = route_pb2.RouteConfiguration(
        name="default",
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name="default",
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(
                            connect_matcher=route_components_pb2.RouteMatch.ConnectMatcher()
                        ),
                        route=route_components_pb2.RouteAction(
                            cluster=names.MAIN_INTERNAL,
                            upgrade_configs=[
                                route_components_pb2.RouteAction.UpgradeConfig(
                                    upgrade_type="CONNECT",
                                    connect_config=route_components_pb2.RouteAction.UpgradeConfig.ConnectConfig(),
                                )
                            ],
                        ),
                    )
                ],
            )
        ],
    )
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=names.CONNECT_TERMINATE,
        use_remote_address=boolean(False),
        stream_idle_timeout=duration(0),
        forward_client_cert_details=hcm_pb2.HttpConnectionManager.APPEND_FORWARD,
        set_current_client_cert_details=hcm_pb2.HttpConnectionManager.SetCurrentClientCertDetails(
            subject=boolean(True), uri=True, dns=True
        ),
        server_name=filters.SERVER_NAME,
        server_header_transformation=hcm_pb2.HttpConnectionManager.OVERWRITE,
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="CONNECT")],
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions(
            allow_connect=True,
            # All streams of one tunnel connection share a worker; capping
            # them keeps one busy client ztunnel from starving the others.
            max_concurrent_streams=uint32(100),
            connection_keepalive=protocol_pb2.KeepaliveSettings(
                interval=duration(10), timeout=duration(20)
            ),
        ),
        route_config=route_config,
        http_filters=[
            filters.http_set_filter_state("connect_authority", filters.connect_authority_values()),
            filters.router(),
        ],
    )
    return listener_pb2.Listener(
        name=names.CONNECT_TERMINATE,
        address=_socket_address("0.0.0.0", names.HBONE_PORT),
        # Few, long-lived tunnels: spread them evenly over the workers.
        connection_balance_config=listener_pb2.Listener.ConnectionBalanceConfig(
            exact_balance=listener_pb2.Listener.ConnectionBalanceConfig.ExactBalance()
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                name="default",
                transport_socket=downstream_hbone_socket(trust_domain),
                filters=[
                    listener_components_pb2.Filter(name=filters.HCM, typed_config=typed(manager))
                ],
            )
        ],
    )


def connect_originate() -> listener_pb2.Listener:
    """The HBONE client: the CONNECT authority is the restored pod address."""
    return listener_pb2.Listener(
        name=names.CONNECT_ORIGINATE,
        use_original_dst=boolean(False),
        internal_listener=listener_pb2.Listener.InternalListenerConfig(),
        listener_filters=[
            filters.listener_filter(
                "envoy.filters.listener.original_dst", original_dst_pb2.OriginalDst()
            )
        ],
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    filters.tcp_proxy(
                        names.CONNECT_ORIGINATE, tunnel_hostname="%DOWNSTREAM_LOCAL_ADDRESS%"
                    )
                ]
            )
        ],
    )
