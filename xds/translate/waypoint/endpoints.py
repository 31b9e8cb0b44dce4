"""EDS for a waypoint (waypoint.md §5): one ClusterLoadAssignment per EDS cluster.

A backend reached through its ztunnel is an *internal address* on
``connect_originate`` whose metadata names the pod (``original_dst.local``);
``connect_originate`` turns that into the HBONE CONNECT authority. A backend
outside the mesh is a plain socket address, reached in plaintext.

Every EDS cluster gets an assignment, empty if need be: the clusters use
``initial_fetch_timeout: 0s``, and an unanswered cluster would stay warming.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from xds.model.frozen import is_subset
from xds.model.networking import DestinationRule
from xds.translate.waypoint import names
from xds.translate.waypoint.inputs import Endpoint, Health, Locality, WaypointInputs, WaypointMode
from xds.translate.waypoint.protos import JsonValue, metadata, uint32
from xds.translate.waypoint.service_clusters import ServiceCluster, service_clusters

_HEALTH = {
    Health.HEALTHY: health_check_pb2.HEALTHY,
    Health.UNHEALTHY: health_check_pb2.UNHEALTHY,
    Health.DRAINING: health_check_pb2.DRAINING,
}


def host_port(address: str, port: int) -> str:
    """``ip:port`` as Envoy parses it (brackets around IPv6: the only addresses, or
    host names, with a colon)."""
    if ":" in address:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def build_endpoints(
    inputs: WaypointInputs, *, only: Container[tuple[str, int]] | None = None
) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """A ClusterLoadAssignment for every EDS cluster of the waypoint, or only for the
    clusters of the ``(hostname, port)`` keys in ``only``."""
    config = inputs.config
    tunnel = config.identity.mode is WaypointMode.HBONE
    assignments = []
    for cluster in service_clusters(config):
        if cluster.service.dns:
            continue  # STRICT_DNS: endpoints are inline in the cluster
        key = (cluster.service.hostname, cluster.port.port)
        if only is not None and key not in only:
            continue
        endpoints = inputs.endpoints.get(key, ())
        rule = config.destination_rules.get(cluster.service.hostname)
        assignments.append(load_assignment(cluster, endpoints, rule, tunnel=tunnel))
    return assignments


def load_assignment(
    cluster: ServiceCluster,
    endpoints: Sequence[Endpoint],
    rule: DestinationRule | None,
    *,
    tunnel: bool,
) -> endpoint_pb2.ClusterLoadAssignment:
    """The assignment of one cluster; ``tunnel`` allows internal (HBONE) addresses."""
    selected = _subset_members(endpoints, rule, cluster.subset)
    by_locality: dict[Locality, list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in selected:
        by_locality.setdefault(endpoint.locality, []).append(
            _lb_endpoint(endpoint, tunnel=tunnel and endpoint.tunnel)
        )
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster.name)
    for locality, lb_endpoints in sorted(by_locality.items(), key=lambda item: _sort_key(item[0])):
        group = assignment.endpoints.add()
        if locality != Locality():
            group.locality.CopyFrom(
                base_pb2.Locality(
                    region=locality.region, zone=locality.zone, sub_zone=locality.sub_zone
                )
            )
        group.lb_endpoints.extend(lb_endpoints)
    return assignment


def _sort_key(locality: Locality) -> tuple[str, str, str]:
    return locality.region, locality.zone, locality.sub_zone


def _subset_members(
    endpoints: Iterable[Endpoint], rule: DestinationRule | None, subset: str | None
) -> list[Endpoint]:
    if subset is None:
        return list(endpoints)
    found = rule.subset(subset) if rule is not None else None
    if found is None:
        return []
    return [endpoint for endpoint in endpoints if is_subset(found.labels, endpoint.labels)]


def _lb_endpoint(endpoint: Endpoint, *, tunnel: bool) -> endpoint_components_pb2.LbEndpoint:
    target = host_port(endpoint.address, endpoint.port)
    values: dict[str, Mapping[str, JsonValue]] = {}
    if tunnel:
        # endpoint_id keeps one host per pod port: without it every pod
        # would collapse into the single address "envoy://connect_originate".
        address = address_pb2.Address(
            envoy_internal_address=address_pb2.EnvoyInternalAddress(
                server_listener_name=names.CONNECT_ORIGINATE, endpoint_id=target
            )
        )
        values[names.ORIGINAL_DST_METADATA] = {"local": target}
    else:
        address = address_pb2.Address(
            socket_address=address_pb2.SocketAddress(
                address=endpoint.address, port_value=endpoint.port
            )
        )
    if endpoint.workload:
        values[names.ISTIO_METADATA] = {"workload": endpoint.workload}
    lb_endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address),
        health_status=_HEALTH[endpoint.health],
        load_balancing_weight=uint32(max(endpoint.weight, 1)),
    )
    if values:
        lb_endpoint.metadata.CopyFrom(metadata(values))
    return lb_endpoint
