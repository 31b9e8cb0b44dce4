"""``main_internal``: where the waypoint does its L7 work (waypoint.md §3.2).

Connections arrive from connect_terminate (or the PROXY listener) with the
original destination restored by ``original_dst``: the service VIP and port,
or a pod address. A matcher tree on destination IP, then port (then sniffed
protocol), picks one named filter chain per (service, port, protocol); pod
addresses of directly bound workloads go to the ``direct-*`` chains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_network

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.proxy_protocol.v3 import proxy_protocol_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2
from google.protobuf import wrappers_pb2

from xds.core.v3 import cidr_pb2
from xds.translate.waypoint import filters, jwt, names, rbac, routes
from xds.translate.waypoint.access_log import file_access_logs
from xds.translate.waypoint.inputs import (
    PortProtocol,
    ServiceInfo,
    ServicePortInfo,
    WaypointConfig,
    WaypointMode,
)
from xds.translate.waypoint.protos import xds_extension
from xds.type.matcher.v3 import ip_pb2, matcher_pb2

# The values ApplicationProtocolInput yields after http_inspector (quoted, as
# the input renders a list of protocols).
_HTTP_APPLICATION_PROTOCOLS = ("'h2c'", "'http/1.1'")


def build_main_internal(config: WaypointConfig) -> listener_pb2.Listener:
    """The main_internal listener of one waypoint."""
    builder = _Builder(config)
    for service in config.bound_services:
        builder.add_service(service)
    builder.add_direct_chains()
    return builder.listener(
        listener_pb2.Listener(
            name=names.MAIN_INTERNAL,
            internal_listener=listener_pb2.Listener.InternalListenerConfig(),
        ),
        first_filter=filters.listener_filter(
            "envoy.filters.listener.original_dst", original_dst_pb2.OriginalDst()
        ),
    )


def build_proxy_inbound(config: WaypointConfig) -> listener_pb2.Listener:
    """main_internal's chains on a real socket behind a PROXY-protocol header (§10b).

    ztunnel has terminated HBONE and prepends a PROXY v2 header naming the
    original destination (service VIP:port or pod address) and the caller,
    with the caller's SPIFFE id in TLV 0xD0. The header restores the
    addresses the matcher and RBAC need, so no internal hop is needed (a
    tcp_proxy into an internal listener loses a response that is followed by
    an immediate close). Each chain first publishes the caller under the same
    filter-state keys connect_terminate uses, so RBAC is the same.
    """
    builder = _Builder(config, prelude=[proxy_peer_state()])
    for service in config.bound_services:
        builder.add_service(service)
    builder.add_direct_chains()
    proxy_protocol = proxy_protocol_pb2.ProxyProtocol(
        rules=[
            proxy_protocol_pb2.ProxyProtocol.Rule(
                tlv_type=PROXY_TLV_PEER_IDENTITY,
                on_tlv_present=proxy_protocol_pb2.ProxyProtocol.KeyValuePair(
                    metadata_namespace=PROXY_METADATA_NAMESPACE, key="peer_principal"
                ),
            )
        ]
    )
    return builder.listener(
        listener_pb2.Listener(
            name=names.PROXY_INBOUND,
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(
                    address="0.0.0.0", port_value=config.identity.proxy_port
                )
            ),
        ),
        first_filter=filters.listener_filter(
            "envoy.filters.listener.proxy_protocol", proxy_protocol
        ),
    )


# ztunnel's PROXY v2 TLV carrying the caller's SPIFFE identity (ztunnel inbound.rs).
PROXY_TLV_PEER_IDENTITY = 0xD0
PROXY_METADATA_NAMESPACE = "envoy.filters.listener.proxy_protocol"


def proxy_peer_state() -> listener_components_pb2.Filter:
    """The caller's address and identity from the PROXY header, as filter state."""
    return filters.network_set_filter_state(
        "proxy_peer",
        [
            filters.filter_state_value(names.ORIGINAL_DST_REMOTE_IP, "%DOWNSTREAM_REMOTE_ADDRESS%"),
            filters.filter_state_value(
                names.PEER_PRINCIPAL,
                f"%DYNAMIC_METADATA({PROXY_METADATA_NAMESPACE}:peer_principal)%",
                factory=names.HASHABLE_STRING,
                skip_if_empty=True,
            ),
        ],
    )


@dataclass
class _Builder:
    config: WaypointConfig
    # Network filters every chain starts with.
    prelude: list[listener_components_pb2.Filter] = field(default_factory=list)
    chains: list[listener_components_pb2.FilterChain] = field(default_factory=list)
    range_matchers: list[ip_pb2.IPMatcher.IPRangeMatcher] = field(default_factory=list)
    # port -> protocol seen on it; a port used with different protocols must be sniffed.
    port_protocols: dict[int, PortProtocol] = field(default_factory=dict)
    tls_ports: set[int] = field(default_factory=set)
    plain_ports: set[int] = field(default_factory=set)

    def add_service(self, service: ServiceInfo) -> None:
        port_map: dict[str, matcher_pb2.Matcher.OnMatch] = {}
        for port in service.ports:
            if port.protocol is PortProtocol.UDP:
                continue
            if port.protocol is PortProtocol.TLS:
                self.tls_ports.add(port.port)
            else:
                self.plain_ports.add(port.port)
            http_name = names.inbound_vip_cluster(port.port, True, service.hostname)
            tcp_name = names.inbound_vip_cluster(port.port, False, service.hostname)
            if port.protocol.is_sniffed:
                self.chains += [
                    self._tcp_chain(service, port, tcp_name),
                    self._http_chain(service, port, http_name),
                ]
                port_map[str(port.port)] = _on_match_matcher(_protocol_matcher(http_name, tcp_name))
                self._note_protocol(port.port, PortProtocol.UNKNOWN)
            elif port.protocol.is_http:
                self.chains.append(self._http_chain(service, port, http_name))
                port_map[str(port.port)] = _on_match_chain(http_name)
                self._note_protocol(port.port, port.protocol)
            else:
                self.chains.append(self._tcp_chain(service, port, tcp_name))
                port_map[str(port.port)] = _on_match_chain(tcp_name)
                self._note_protocol(port.port, port.protocol)
        # A service without addresses (headless, DNS) cannot be matched by VIP;
        # Envoy also rejects an empty range list.
        if port_map and service.vips:
            by_port = matcher_pb2.Matcher(
                matcher_tree=matcher_pb2.Matcher.MatcherTree(
                    input=xds_extension("port", network_inputs_pb2.DestinationPortInput()),
                    exact_match_map=matcher_pb2.Matcher.MatcherTree.MatchMap(map=port_map),
                )
            )
            self.range_matchers.append(
                ip_pb2.IPMatcher.IPRangeMatcher(
                    ranges=[_cidr(vip) for vip in service.vips], on_match=_on_match_matcher(by_port)
                )
            )

    def _note_protocol(self, port: int, protocol: PortProtocol) -> None:
        seen = self.port_protocols.get(port)
        if seen is None:
            self.port_protocols[port] = protocol
        elif seen.is_http != protocol.is_http or protocol.is_sniffed:
            self.port_protocols[port] = PortProtocol.UNKNOWN

    def _http_chain(
        self, service: ServiceInfo, port: ServicePortInfo, cluster: str
    ) -> listener_components_pb2.FilterChain:
        route_config = routes.service_route_config(self.config, service, port, cluster)
        http_filters = [
            *jwt.http_filters(self.config, service),
            *rbac.http_filters(self.config, service),
            *filters.core_http_filters(grpc_web=port.protocol is PortProtocol.GRPC_WEB),
        ]
        manager = filters.http_connection_manager(
            stat_prefix=f"inbound_0.0.0.0_{port.port};",
            route_config=route_config,
            http_filters=http_filters,
            http2=port.protocol.is_http2,
            access_logs=file_access_logs(self.config.access_logs),
            trace_sampling=self.config.trace_sampling,
        )
        return listener_components_pb2.FilterChain(name=cluster, filters=[*self.prelude, manager])

    def _tcp_chain(
        self, service: ServiceInfo, port: ServicePortInfo, cluster: str
    ) -> listener_components_pb2.FilterChain:
        targets = routes.tcp_targets(self.config, service, port.port)
        return listener_components_pb2.FilterChain(
            name=cluster,
            filters=[
                *self.prelude,
                *rbac.network_filters(self.config, service),
                filters.tcp_proxy(
                    cluster, weighted=targets, access_logs=file_access_logs(self.config.access_logs)
                ),
            ],
        )

    def add_direct_chains(self) -> None:
        """Chains for traffic addressed to a bound workload's own IP.

        In HBONE mode they go to ``encap`` (straight into connect_originate,
        which tunnels to the pod); with ztunnel doing HBONE, plaintext to the
        original destination. Only waypoint-wide policies apply: there is no
        service to attach policies to.
        """
        hbone = self.config.identity.mode is WaypointMode.HBONE
        target = names.ENCAP if hbone else names.PASSTHROUGH
        prelude = [filters.republish_local_ip()] if hbone else self.prelude
        encap_route = routes.passthrough_route_config(target)
        self.chains += [
            listener_components_pb2.FilterChain(
                name=names.DIRECT_TCP,
                filters=[
                    *prelude,
                    *rbac.network_filters(self.config, None),
                    filters.tcp_proxy(
                        target, access_logs=file_access_logs(self.config.access_logs)
                    ),
                ],
            ),
            listener_components_pb2.FilterChain(
                name=names.DIRECT_HTTP,
                filters=[
                    *prelude,
                    filters.http_connection_manager(
                        stat_prefix="inbound_0.0.0.0_0;",
                        route_config=encap_route,
                        http_filters=[
                            *jwt.http_filters(self.config, None),
                            *rbac.http_filters(self.config, None),
                            *filters.core_http_filters(),
                        ],
                        access_logs=file_access_logs(self.config.access_logs),
                        trace_sampling=self.config.trace_sampling,
                    ),
                ],
            ),
        ]
        addresses = [
            address for workload in self.config.workloads for address in workload.addresses
        ]
        if addresses:
            self.range_matchers.append(
                ip_pb2.IPMatcher.IPRangeMatcher(
                    ranges=[_cidr(address) for address in addresses],
                    on_match=_on_match_matcher(
                        _protocol_matcher(names.DIRECT_HTTP, names.DIRECT_TCP)
                    ),
                )
            )

    def listener(
        self,
        listener: listener_pb2.Listener,
        *,
        first_filter: listener_components_pb2.ListenerFilter,
    ) -> listener_pb2.Listener:
        """``listener`` completed with the listener filters, the matcher and the chains."""
        listener_filters = [first_filter, self._http_inspector()]
        if self.tls_ports:
            disabled = sorted(self.plain_ports - self.tls_ports)
            listener_filters.append(
                filters.listener_filter(
                    "envoy.filters.listener.tls_inspector",
                    tls_inspector_pb2.TlsInspector(
                        initial_read_buffer_size=wrappers_pb2.UInt32Value(value=512)
                    ),
                    disabled=filters.ports_predicate(disabled) if disabled else None,
                )
            )
        listener.traffic_direction = base_pb2.INBOUND
        listener.listener_filters.extend(listener_filters)
        listener.filter_chain_matcher.CopyFrom(
            matcher_pb2.Matcher(
                matcher_tree=matcher_pb2.Matcher.MatcherTree(
                    input=xds_extension("ip", network_inputs_pb2.DestinationIPInput()),
                    custom_match=xds_extension(
                        "ip", ip_pb2.IPMatcher(range_matchers=self.range_matchers)
                    ),
                )
            )
        )
        listener.filter_chains.extend(self.chains)
        return listener

    def _http_inspector(self) -> listener_components_pb2.ListenerFilter:
        """http_inspector, skipped on ports whose protocol is known.

        It waits for the first bytes, which stalls server-first protocols; a
        port declared TCP or HTTP needs no sniffing. Bound workloads accept
        any port, so with workloads it must stay on everywhere.
        """
        disabled = None
        if not self.config.workloads:
            known = [
                port for port, protocol in self.port_protocols.items() if not protocol.is_sniffed
            ]
            if known:
                disabled = filters.ports_predicate(known)
        return filters.listener_filter(
            "envoy.filters.listener.http_inspector",
            http_inspector_pb2.HttpInspector(),
            disabled=disabled,
        )


def _cidr(address: str) -> cidr_pb2.CidrRange:
    """An address (or a ServiceEntry's CIDR) as a range for the IP matcher."""
    network = ip_network(address, strict=False)
    return cidr_pb2.CidrRange(
        address_prefix=str(network.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
    )


def _on_match_chain(chain: str) -> matcher_pb2.Matcher.OnMatch:
    """A matcher action naming a filter chain (how the unified matcher selects chains)."""
    return matcher_pb2.Matcher.OnMatch(
        action=xds_extension(chain, wrappers_pb2.StringValue(value=chain))
    )


def _on_match_matcher(matcher: matcher_pb2.Matcher) -> matcher_pb2.Matcher.OnMatch:
    return matcher_pb2.Matcher.OnMatch(matcher=matcher)


def _protocol_matcher(http_chain: str, tcp_chain: str) -> matcher_pb2.Matcher:
    """Sniffed HTTP goes to ``http_chain``, anything else to ``tcp_chain``."""
    return matcher_pb2.Matcher(
        matcher_tree=matcher_pb2.Matcher.MatcherTree(
            input=xds_extension(
                "application-protocol", network_inputs_pb2.ApplicationProtocolInput()
            ),
            exact_match_map=matcher_pb2.Matcher.MatcherTree.MatchMap(
                map={
                    protocol: _on_match_chain(http_chain)
                    for protocol in _HTTP_APPLICATION_PROTOCOLS
                }
            ),
        ),
        on_no_match=_on_match_chain(tcp_chain),
    )
