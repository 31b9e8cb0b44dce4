"""CDS for a waypoint (waypoint.md §4).

Always ``main_internal``, ``encap`` and ``connect_originate`` (the plumbing
between the three listeners), then one EDS cluster per service port and
protocol kind (and per DestinationRule subset). Clusters of services bound to
the waypoint are ``inbound-vip|…``; route targets that are not bound get
``outbound|…``. In sandwich and PROXY modes ztunnel does the HBONE, so the
plumbing clusters are replaced by a plaintext ``PassthroughCluster``.
"""

from __future__ import annotations

from dataclasses import replace

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.internal_upstream.v3 import internal_upstream_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.metadata.v3 import metadata_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2

from xds.model.networking import (
    ConnectionPool,
    DestinationRule,
    OutlierDetection,
    TrafficPolicy,
)
from xds.translate.waypoint import names
from xds.translate.waypoint.endpoints import load_assignment
from xds.translate.waypoint.inputs import WaypointConfig, WaypointMode
from xds.translate.waypoint.protos import JsonValue, duration, metadata, typed, uint32
from xds.translate.waypoint.service_clusters import ServiceCluster, service_clusters
from xds.translate.waypoint.tls import originated_tls_socket, upstream_hbone_socket

_MAX = 2**32 - 1
CONNECT_TIMEOUT_SECONDS = 10
# istiod: internal plumbing connections are pooled for 5 minutes; HBONE tunnels
# to ztunnels for the mesh's hboneIdleTimeout (1 h).
_INTERNAL_IDLE_SECONDS = 300
_HBONE_IDLE_SECONDS = 3600
_HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def build_clusters(config: WaypointConfig) -> list[cluster_pb2.Cluster]:
    """All clusters of one waypoint."""
    identity = config.identity
    clusters: list[cluster_pb2.Cluster] = []
    if identity.mode is WaypointMode.HBONE:
        clusters += [
            _internal_static(names.MAIN_INTERNAL, names.MAIN_INTERNAL),
            _internal_static(names.ENCAP, names.CONNECT_ORIGINATE),
        ]
    else:
        clusters.append(_passthrough())
    hbone_upstream = identity.mode is WaypointMode.HBONE
    for cluster in service_clusters(config):
        rule = config.destination_rules.get(cluster.service.hostname)
        clusters.append(_service_cluster(cluster, rule, hbone_upstream=hbone_upstream))
    if identity.mode is WaypointMode.HBONE:
        clusters.append(_connect_originate(identity.trust_domain, identity.namespace))
    return clusters


def _circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    # Limits are the job of DestinationRules; by default nothing is capped.
    return circuit_breaker_pb2.CircuitBreakers(
        thresholds=[
            circuit_breaker_pb2.CircuitBreakers.Thresholds(
                max_connections=uint32(_MAX),
                max_pending_requests=uint32(_MAX),
                max_requests=uint32(_MAX),
                max_retries=uint32(_MAX),
                track_remaining=True,
            )
        ]
    )


def _raw_buffer() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name="raw_buffer", typed_config=typed(raw_buffer_pb2.RawBuffer())
    )


def internal_upstream_socket(
    *, passthrough: bool, inner: base_pb2.TransportSocket | None = None
) -> base_pb2.TransportSocket:
    """``internal_upstream`` around plaintext (or ``inner``: TLS a DestinationRule
    originates, which then travels inside the HBONE tunnel); ``passthrough`` copies host
    metadata.

    The copied ``envoy.filters.listener.original_dst`` metadata is what tells
    ``connect_originate`` which pod the tunnel is for.
    """
    transport = internal_upstream_pb2.InternalUpstreamTransport(
        transport_socket=inner if inner is not None else _raw_buffer()
    )
    if passthrough:
        for namespace in (names.ORIGINAL_DST_METADATA, names.ISTIO_METADATA):
            transport.passthrough_metadata.append(
                internal_upstream_pb2.InternalUpstreamTransport.MetadataValueSource(
                    kind=metadata_pb2.MetadataKind(host=metadata_pb2.MetadataKind.Host()),
                    name=namespace,
                )
            )
    return base_pb2.TransportSocket(name="internal_upstream", typed_config=typed(transport))


def _http_options(
    *,
    idle_seconds: int | None = None,
    downstream: bool = False,
    http2: bool = False,
    allow_connect: bool = False,
) -> any_pb2.Any:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if idle_seconds is not None:
        options.common_http_protocol_options.idle_timeout.CopyFrom(duration(idle_seconds))
    if downstream:
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif http2 or allow_connect:
        options.explicit_http_config.http2_protocol_options.CopyFrom(
            protocol_pb2.Http2ProtocolOptions(allow_connect=allow_connect)
        )
    return typed(options)


def _internal_static(name: str, listener: str) -> cluster_pb2.Cluster:
    """A STATIC cluster whose only endpoint is the internal listener ``listener``."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        alt_stat_name=f"{name};",
        circuit_breakers=_circuit_breakers(),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=address_pb2.Address(
                                    envoy_internal_address=address_pb2.EnvoyInternalAddress(
                                        server_listener_name=listener
                                    )
                                )
                            )
                        )
                    ]
                )
            ],
        ),
        transport_socket=internal_upstream_socket(passthrough=False),
    )
    cluster.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(
        _http_options(idle_seconds=_INTERNAL_IDLE_SECONDS, downstream=True)
    )
    return cluster


def _connect_originate(trust_domain: str, namespace: str) -> cluster_pb2.Cluster:
    """HBONE origination: CONNECT over mTLS to the restored destination on 15008."""
    cluster = cluster_pb2.Cluster(
        name=names.CONNECT_ORIGINATE,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(CONNECT_TIMEOUT_SECONDS),
        cleanup_interval=duration(60),
        alt_stat_name=f"{names.CONNECT_ORIGINATE};",
        circuit_breakers=_circuit_breakers(),
        original_dst_lb_config=cluster_pb2.Cluster.OriginalDstLbConfig(
            upstream_port_override=uint32(names.HBONE_PORT),
            # Lets an endpoint send the tunnel to a waypoint address while the
            # CONNECT authority stays the service; a plain waypoint never sets it.
            metadata_key=metadata_pb2.MetadataKey(
                key=names.ORIGINAL_DST_METADATA,
                path=[metadata_pb2.MetadataKey.PathSegment(key="waypoint")],
            ),
        ),
        transport_socket=upstream_hbone_socket(trust_domain, namespace),
    )
    cluster.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(
        _http_options(idle_seconds=_HBONE_IDLE_SECONDS, allow_connect=True)
    )
    return cluster


def _passthrough() -> cluster_pb2.Cluster:
    """Plaintext to the original destination; ztunnel captures and tunnels it."""
    return cluster_pb2.Cluster(
        name=names.PASSTHROUGH,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(CONNECT_TIMEOUT_SECONDS),
        alt_stat_name=f"{names.PASSTHROUGH};",
        circuit_breakers=_circuit_breakers(),
    )


_SIMPLE_LB = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
}


def traffic_policy(
    rule: DestinationRule | None, subset: str | None, port: int
) -> TrafficPolicy | None:
    """The effective policy of one cluster, merged as istiod merges it: the subset's
    components (load balancer, connection pool, outlier detection) override the rule's
    one by one, and a ``portLevelSettings`` entry for ``port`` replaces all of them."""
    if rule is None:
        return None
    base = _at_port(rule.traffic_policy, port)
    found = rule.subset(subset) if subset is not None else None
    own = found.traffic_policy if found is not None else None
    if own is None:
        return base
    merged = base or TrafficPolicy()
    if own.has_load_balancer:
        merged = replace(
            merged,
            load_balancer_simple=own.load_balancer_simple,
            consistent_hash=own.consistent_hash,
        )
    if own.connection_pool is not None:
        merged = replace(merged, connection_pool=own.connection_pool)
    if own.outlier_detection is not None:
        merged = replace(merged, outlier_detection=own.outlier_detection)
    if own.tls is not None:
        merged = replace(merged, tls=own.tls)
    return _at_port(replace(merged, port_level=own.port_level), port)


def _at_port(policy: TrafficPolicy | None, port: int) -> TrafficPolicy | None:
    if policy is None:
        return None
    for number, override in policy.port_level:
        if number == port:
            return override  # not merged: port-level settings do not inherit
    return replace(policy, port_level=())


def _service_cluster(
    cluster: ServiceCluster, rule: DestinationRule | None, *, hbone_upstream: bool
) -> cluster_pb2.Cluster:
    service = cluster.service
    istio: dict[str, JsonValue] = {
        "services": [
            {"host": service.hostname, "name": service.name, "namespace": service.namespace}
        ]
    }
    if rule is not None:
        istio["config"] = (
            f"/apis/networking.istio.io/v1/namespaces/{rule.namespace}/destination-rule/{rule.name}"
        )
    if cluster.subset:
        istio["subset"] = cluster.subset
    result = cluster_pb2.Cluster(
        name=cluster.name,
        alt_stat_name=f"{cluster.name};",
        connect_timeout=duration(CONNECT_TIMEOUT_SECONDS),
        lb_policy=cluster_pb2.Cluster.LEAST_REQUEST,
        common_lb_config=cluster_pb2.Cluster.CommonLbConfig(),
        circuit_breakers=_circuit_breakers(),
        metadata=metadata({names.ISTIO_METADATA: istio}),
    )
    if service.dns:
        # Hostname endpoints cannot travel over EDS as addresses Envoy would
        # resolve, so DNS ServiceEntries carry them inline (istiod does the same).
        result.type = cluster_pb2.Cluster.STRICT_DNS
        target = cluster.port.target_port
        port = target if isinstance(target, int) and target else cluster.port.port
        result.load_assignment.CopyFrom(
            load_assignment(
                cluster,
                [
                    replace(endpoint, port=endpoint.port or port)
                    for endpoint in service.dns_endpoints
                ],
                rule,
                tunnel=False,
            )
        )
    else:
        result.type = cluster_pb2.Cluster.EDS
        result.eds_cluster_config.service_name = cluster.name
        source = result.eds_cluster_config.eds_config
        source.ads.SetInParent()
        source.resource_api_version = config_source_pb2.V3
        # Every cluster is always answered (possibly with no endpoints), so
        # there is nothing to wait for; istiod sets 0s as well.
        source.initial_fetch_timeout.CopyFrom(duration(0))
    policy = traffic_policy(rule, cluster.subset, cluster.port.port)
    if policy is not None:
        _apply_load_balancer(result, policy)
        if policy.connection_pool is not None:
            _apply_connection_pool(result, policy.connection_pool, http=cluster.http)
        if policy.outlier_detection is not None:
            _apply_outlier_detection(result, policy.outlier_detection)
    tls = None if policy is None or policy.tls is None else policy.tls
    if service.dns and tls is not None:
        # An external host the waypoint reaches directly (no HBONE): TLS origination.
        result.transport_socket.CopyFrom(originated_tls_socket(tls, service.hostname))
    elif hbone_upstream:
        # A mesh destination with TLS origination: TLS inside the tunnel, as istiod's
        # waypoint clusters wrap it (the pod sees TLS, ztunnels see HBONE).
        inner = None if tls is None else originated_tls_socket(tls, service.hostname)
        result.transport_socket.CopyFrom(internal_upstream_socket(passthrough=True, inner=inner))
    if cluster.http:
        protocol = cluster.port.protocol
        if protocol.is_http2:
            result.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(
                _http_options(http2=True)
            )
        elif protocol.is_sniffed:
            result.typed_extension_protocol_options[_HTTP_OPTIONS_KEY].CopyFrom(
                _http_options(downstream=True)
            )
    return result


def _apply_connection_pool(
    cluster: cluster_pb2.Cluster, pool: ConnectionPool, *, http: bool
) -> None:
    """istiod's limits: each one set replaces the (unlimited) default of its threshold."""
    threshold = cluster.circuit_breakers.thresholds[0]
    for value, field in (
        (pool.max_connections, threshold.max_connections),
        (pool.http1_max_pending_requests, threshold.max_pending_requests),
        (pool.http2_max_requests, threshold.max_requests),
        (pool.max_retries, threshold.max_retries),
    ):
        if value > 0:
            field.CopyFrom(uint32(value))
    if pool.connect_timeout is not None:
        cluster.connect_timeout.CopyFrom(duration(pool.connect_timeout))
    idle = pool.http_idle_timeout or pool.tcp_idle_timeout
    wanted = (
        idle is not None
        or pool.max_requests_per_connection > 0
        or pool.max_connection_duration is not None
        or pool.max_concurrent_streams > 0
    )
    if not http or not wanted:
        return
    options = http_protocol_options_pb2.HttpProtocolOptions()
    existing = cluster.typed_extension_protocol_options
    if _HTTP_OPTIONS_KEY in existing:
        existing[_HTTP_OPTIONS_KEY].Unpack(options)
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    common = options.common_http_protocol_options
    if idle is not None:
        common.idle_timeout.CopyFrom(duration(idle))
    if pool.max_requests_per_connection > 0:
        common.max_requests_per_connection.CopyFrom(uint32(pool.max_requests_per_connection))
    if pool.max_connection_duration is not None:
        common.max_connection_duration.CopyFrom(duration(pool.max_connection_duration))
    if pool.max_concurrent_streams > 0 and options.explicit_http_config.HasField(
        "http2_protocol_options"
    ):
        options.explicit_http_config.http2_protocol_options.max_concurrent_streams.CopyFrom(
            uint32(pool.max_concurrent_streams)
        )
    existing[_HTTP_OPTIONS_KEY].CopyFrom(typed(options))


def _apply_outlier_detection(cluster: cluster_pb2.Cluster, outlier: OutlierDetection) -> None:
    """istiod's conversion: only consecutive-error ejection (success-rate ejection off),
    and the panic threshold set to ``minHealthPercent`` (0 unless given): with a few
    pods per service, Envoy's default 50 % would send traffic to ejected hosts."""
    out = cluster.outlier_detection
    out.enforcing_success_rate.CopyFrom(uint32(0))
    if outlier.consecutive_5xx_errors is not None:
        out.consecutive_5xx.CopyFrom(uint32(outlier.consecutive_5xx_errors))
        out.enforcing_consecutive_5xx.CopyFrom(
            uint32(100 if outlier.consecutive_5xx_errors > 0 else 0)
        )
    if outlier.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.CopyFrom(uint32(outlier.consecutive_gateway_errors))
        out.enforcing_consecutive_gateway_failure.CopyFrom(
            uint32(100 if outlier.consecutive_gateway_errors > 0 else 0)
        )
    if outlier.interval is not None:
        out.interval.CopyFrom(duration(outlier.interval))
    if outlier.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(outlier.base_ejection_time))
    if outlier.max_ejection_percent > 0:
        out.max_ejection_percent.CopyFrom(uint32(outlier.max_ejection_percent))
    if outlier.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        failures = outlier.consecutive_local_origin_failures
        if failures:
            out.consecutive_local_origin_failure.CopyFrom(uint32(failures))
            out.enforcing_consecutive_local_origin_failure.CopyFrom(uint32(100))
        out.enforcing_local_origin_success_rate.CopyFrom(uint32(0))
    cluster.common_lb_config.healthy_panic_threshold.CopyFrom(
        percent_pb2.Percent(value=float(outlier.min_health_percent))
    )


def _apply_load_balancer(cluster: cluster_pb2.Cluster, policy: TrafficPolicy) -> None:
    if policy.consistent_hash is not None:
        # The route's hash_policy (routes.py) supplies the key.
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        return
    if policy.load_balancer_simple == "PASSTHROUGH":
        # Not meaningful behind HBONE: every endpoint is an internal address.
        return
    simple = _SIMPLE_LB.get(policy.load_balancer_simple or "")
    if simple is not None:
        cluster.lb_policy = simple
