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
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.internal_upstream.v3 import internal_upstream_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.metadata.v3 import metadata_pb2

from xds.model.networking import DestinationRule, TrafficPolicy
from xds.translate.waypoint import names
from xds.translate.waypoint.endpoints import load_assignment
from xds.translate.waypoint.inputs import WaypointConfig, WaypointMode
from xds.translate.waypoint.protos import duration, metadata, typed, uint32
from xds.translate.waypoint.service_clusters import ServiceCluster, service_clusters
from xds.translate.waypoint.tls import upstream_hbone_socket

_MAX = 2**32 - 1
CONNECT_TIMEOUT_SECONDS = 10
# istiod: internal plumbing connections are pooled for 5 minutes; HBONE tunnels
# to ztunnels for the mesh's hboneIdleTimeout (1 h).
_INTERNAL_IDLE_SECONDS = 300
_HBONE_IDLE_SECONDS = 3600
_HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def build_clusters(config: WaypointConfig) -> list[Any]:
    """All clusters of one waypoint."""
    identity = config.identity
    clusters: list[Any] = []
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


def _circuit_breakers() -> Any:
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


def _raw_buffer() -> Any:
    return base_pb2.TransportSocket(
        name="raw_buffer", typed_config=typed(raw_buffer_pb2.RawBuffer())
    )


def internal_upstream_socket(*, passthrough: bool) -> Any:
    """``internal_upstream`` around plaintext; ``passthrough`` copies host metadata.

    The copied ``envoy.filters.listener.original_dst`` metadata is what tells
    ``connect_originate`` which pod the tunnel is for.
    """
    transport = internal_upstream_pb2.InternalUpstreamTransport(transport_socket=_raw_buffer())
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
) -> Any:
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


def _internal_static(name: str, listener: str) -> Any:
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


def _connect_originate(trust_domain: str, namespace: str) -> Any:
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


def _passthrough() -> Any:
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


def traffic_policy(rule: DestinationRule | None, subset: str | None) -> TrafficPolicy | None:
    """The effective policy: the subset's own when it has one, else the rule's."""
    if rule is None:
        return None
    if subset is not None:
        found = rule.subset(subset)
        if found is not None and found.traffic_policy is not None:
            return found.traffic_policy
    return rule.traffic_policy


def _service_cluster(
    cluster: ServiceCluster, rule: DestinationRule | None, *, hbone_upstream: bool
) -> Any:
    service = cluster.service
    istio: dict[str, Any] = {
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
    policy = traffic_policy(rule, cluster.subset)
    if policy is not None:
        _apply_load_balancer(result, policy)
    if hbone_upstream:
        result.transport_socket.CopyFrom(internal_upstream_socket(passthrough=True))
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


def _apply_load_balancer(cluster: Any, policy: TrafficPolicy) -> None:
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
