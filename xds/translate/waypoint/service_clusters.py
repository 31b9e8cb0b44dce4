"""The per-service clusters of a waypoint, named once for CDS, EDS and routes.

CDS builds a cluster for each ``ServiceCluster``, EDS a load assignment for
each, and the route builder resolves destinations to the same names, so the
three always agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from xds.translate.waypoint import names
from xds.translate.waypoint.inputs import (
    PortProtocol,
    ServiceInfo,
    ServicePortInfo,
    WaypointConfig,
    WaypointMode,
)


@dataclass(frozen=True, slots=True)
class ServiceCluster:
    """One EDS cluster of a service port: its name and what selects its endpoints."""

    name: str
    service: ServiceInfo
    port: ServicePortInfo
    http: bool
    subset: str | None = None


def service_clusters(config: WaypointConfig) -> Iterator[ServiceCluster]:
    """Every per-service cluster of the waypoint, in a stable order.

    In HBONE and PROXY modes bound services get ``inbound-vip`` clusters; in
    sandwich mode the gateway is an ordinary outbound proxy and every service
    gets ``outbound`` clusters (it cannot tell bound from unbound apart anyway).
    """
    sandwich = config.identity.mode is WaypointMode.SANDWICH
    for service in config.services:
        rule = config.destination_rules.get(service.hostname)
        subsets: tuple[str | None, ...] = (None,)
        if rule is not None:
            subsets = (None, *(subset.name for subset in rule.subsets))
        inbound = service.bound and not sandwich
        for port in service.ports:
            if port.protocol is PortProtocol.UDP:
                continue  # Envoy listeners here are TCP; UDP never reaches a waypoint
            if inbound:
                for http in port.cluster_kinds:
                    for subset in subsets:
                        yield ServiceCluster(
                            names.inbound_vip_cluster(port.port, http, service.hostname, subset),
                            service,
                            port,
                            http,
                            subset,
                        )
            else:
                # Outbound names carry no protocol: one cluster per port (and subset).
                http = port.protocol.is_http or port.protocol.is_sniffed
                for subset in subsets:
                    name = names.outbound_cluster(port.port, service.hostname, subset)
                    yield ServiceCluster(name, service, port, http, subset)
