"""The Envoy filters the waypoint listeners are made of (waypoint.md §3, §7).

Only filters built into stock Envoy: istio-proxy's peer-metadata, stats and
metadata-exchange filters are left out (a stock Envoy rejects them), and the
filter-state factory is ``envoy.hashable_string`` instead of istio's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.common.set_filter_state.v3 import value_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.http.grpc_web.v3 import grpc_web_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.http.set_filter_state.v3 import (
    set_filter_state_pb2 as http_set_filter_state_pb2,
)
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.set_filter_state.v3 import (
    set_filter_state_pb2 as network_set_filter_state_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.request_id.uuid.v3 import uuid_pb2
from envoy.type.v3 import range_pb2
from google.protobuf.message import Message

from xds.translate.waypoint import names
from xds.translate.waypoint.protos import boolean, duration, inline_format, typed

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
SERVER_NAME = "istio-envoy"


def filter_state_value(
    key: str, format_string: str, *, factory: str | None = None, skip_if_empty: bool = False
) -> value_pb2.FilterStateValue:
    """One ``set_filter_state`` entry, shared with the upstream (internal) connection.

    ``ONCE``: the object reaches the next internal connection and no further,
    which is why the direct chains of main_internal publish ``local_ip`` again.
    """
    value = value_pb2.FilterStateValue(
        object_key=key,
        format_string=inline_format(format_string, omit_empty=skip_if_empty),
        shared_with_upstream=value_pb2.FilterStateValue.ONCE,
        skip_if_empty=skip_if_empty,
    )
    if factory:
        value.factory_key = factory
    return value


def connect_authority_values() -> list[value_pb2.FilterStateValue]:
    """What connect_terminate hands to main_internal about the tunnel.

    ``local_ip``/``remote_ip`` have registered factories (address objects);
    the two principals and the authority are plain strings that RBAC and the
    access logs read back with ``filter_state`` matchers and ``%FILTER_STATE%``.
    The caller's address is the *direct* peer: ``%DOWNSTREAM_REMOTE_ADDRESS%``
    would follow an ``x-forwarded-for`` header on the CONNECT request, which
    the caller controls, and ``ipBlocks`` policies are enforced on this value.
    """
    return [
        filter_state_value(names.ORIGINAL_DST_LOCAL_IP, "%REQ(:AUTHORITY)%"),
        filter_state_value(
            names.CONNECT_AUTHORITY, "%REQ(:AUTHORITY)%", factory=names.HASHABLE_STRING
        ),
        filter_state_value(names.ORIGINAL_DST_REMOTE_IP, "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"),
        filter_state_value(
            names.PEER_PRINCIPAL, "%DOWNSTREAM_PEER_URI_SAN%", factory=names.HASHABLE_STRING
        ),
        filter_state_value(
            names.LOCAL_PRINCIPAL, "%DOWNSTREAM_LOCAL_URI_SAN%", factory=names.HASHABLE_STRING
        ),
    ]


def http_set_filter_state(
    name: str, values: Iterable[value_pb2.FilterStateValue]
) -> hcm_pb2.HttpFilter:
    config = http_set_filter_state_pb2.Config(on_request_headers=list(values))
    return hcm_pb2.HttpFilter(name=name, typed_config=typed(config))


def network_set_filter_state(
    name: str, values: Iterable[value_pb2.FilterStateValue]
) -> listener_components_pb2.Filter:
    config = network_set_filter_state_pb2.Config(on_new_connection=list(values))
    return listener_components_pb2.Filter(name=name, typed_config=typed(config))


def republish_local_ip() -> listener_components_pb2.Filter:
    """Direct chains: pass the pod address on to connect_originate once more."""
    return network_set_filter_state(
        "connect_authority",
        [
            filter_state_value(
                names.ORIGINAL_DST_LOCAL_IP, f"%FILTER_STATE({names.ORIGINAL_DST_LOCAL_IP}:PLAIN)%"
            )
        ],
    )


def router() -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(
        name="envoy.filters.http.router", typed_config=typed(router_pb2.Router())
    )


def core_http_filters(*, grpc_web: bool = False) -> list[hcm_pb2.HttpFilter]:
    """The filters between authorization and the router on a waypoint chain.

    ``fault`` and ``cors`` are empty on purpose: routes override them through
    ``typed_per_filter_config``, which only works when the filter is present.
    """
    filters = []
    if grpc_web:
        filters.append(
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.grpc_web", typed_config=typed(grpc_web_pb2.GrpcWeb())
            )
        )
    filters += [
        hcm_pb2.HttpFilter(
            name="envoy.filters.http.grpc_stats",
            typed_config=typed(
                grpc_stats_pb2.FilterConfig(
                    emit_filter_state=True, stats_for_all_methods=boolean(False)
                )
            ),
        ),
        hcm_pb2.HttpFilter(
            name="envoy.filters.http.fault", typed_config=typed(fault_pb2.HTTPFault())
        ),
        hcm_pb2.HttpFilter(name="envoy.filters.http.cors", typed_config=typed(cors_pb2.Cors())),
    ]
    return filters


def http_connection_manager(
    *,
    stat_prefix: str,
    route_config: route_pb2.RouteConfiguration,
    http_filters: Sequence[hcm_pb2.HttpFilter],
    http2: bool = False,
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
    trace_sampling: float | None = None,
) -> listener_components_pb2.Filter:
    """The HCM of a main_internal (or sandwich) chain, with an inline route config.

    No RDS: the route config is part of the listener, as istiod does for
    waypoints, so a route change is one LDS push and never a dangling RDS name.
    """
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        use_remote_address=boolean(False),
        normalize_path=boolean(True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
        stream_idle_timeout=duration(0),
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        server_name=SERVER_NAME,
        server_header_transformation=hcm_pb2.HttpConnectionManager.OVERWRITE,
        proxy_100_continue=True,
        request_id_extension=hcm_pb2.RequestIDExtension(
            typed_config=typed(
                uuid_pb2.UuidRequestIdConfig(use_request_id_for_trace_sampling=boolean(True))
            )
        ),
        route_config=route_config,
        http_filters=[*http_filters, router()],
        access_log=access_logs,
    )
    if http2:
        manager.http2_protocol_options.SetInParent()
    if trace_sampling is not None:
        # The sampling decision travels in x-request-id and the trace headers: useful
        # without a collector, to the applications that propagate them.
        manager.tracing.random_sampling.value = trace_sampling
        manager.tracing.client_sampling.value = 100.0
        manager.tracing.overall_sampling.value = 100.0
    return listener_components_pb2.Filter(name=HCM, typed_config=typed(manager))


def tcp_proxy(
    cluster: str,
    *,
    stat_prefix: str | None = None,
    tunnel_hostname: str | None = None,
    weighted: Sequence[tuple[str, int]] = (),
    access_logs: Sequence[accesslog_pb2.AccessLog] = (),
) -> listener_components_pb2.Filter:
    """A tcp_proxy to ``cluster``, or split by ``weighted`` (cluster, weight) pairs."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix or cluster, access_log=access_logs)
    if len(weighted) > 1:
        for name, weight in weighted:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    else:
        proxy.cluster = weighted[0][0] if weighted else cluster
    if tunnel_hostname is not None:
        proxy.tunneling_config.hostname = tunnel_hostname
    return listener_components_pb2.Filter(name=TCP_PROXY, typed_config=typed(proxy))


def listener_filter(
    name: str,
    message: Message,
    *,
    disabled: listener_components_pb2.ListenerFilterChainMatchPredicate | None = None,
) -> listener_components_pb2.ListenerFilter:
    result = listener_components_pb2.ListenerFilter(name=name, typed_config=typed(message))
    if disabled is not None:
        result.filter_disabled.CopyFrom(disabled)
    return result


def ports_predicate(
    ports: Sequence[int],
) -> listener_components_pb2.ListenerFilterChainMatchPredicate:
    """A listener-filter predicate true for destination ports in ``ports``."""
    rules = [
        listener_components_pb2.ListenerFilterChainMatchPredicate(
            destination_port_range=range_pb2.Int32Range(start=port, end=port + 1)
        )
        for port in sorted(set(ports))
    ]
    if len(rules) == 1:
        return rules[0]
    return listener_components_pb2.ListenerFilterChainMatchPredicate(
        or_match=listener_components_pb2.ListenerFilterChainMatchPredicate.MatchSet(rules=rules)
    )
