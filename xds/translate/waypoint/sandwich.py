"""Listeners of a sandwiched Gateway used as a waypoint (waypoint.md §10a).

ztunnel terminates HBONE in the gateway pod and hands over plaintext on the
original destination port, and it re-wraps the gateway's outbound traffic;
so the gateway is an ordinary HTTP proxy: one plaintext listener per HTTP
listener of the Gateway, routes inline, and ``outbound|…`` clusters.

Virtual hosts come from routes attached to the Gateway (by their
hostnames), then one per bound service on that port, matching the service's
host names and applying its GAMMA routes or VirtualService (else a default
route to the service). The gateway never learns the caller's SPIFFE id, so
identity conditions in policies fail closed (see ``rbac``); service-attached
policies apply per virtual host through ``RBACPerRoute``.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from xds.model.gateway import GRPCRoute, HTTPRoute
from xds.translate.waypoint import filters, gateway_api, names, rbac, routes
from xds.translate.waypoint.inputs import GatewayListener, ServiceInfo, WaypointConfig
from xds.translate.waypoint.protos import boolean, duration, typed, uint32


def build_listeners(config: WaypointConfig) -> list[listener_pb2.Listener]:
    by_port: dict[int, GatewayListener] = {}
    for listener in config.identity.listeners:
        # Several Gateway listeners may share a port (different hostnames);
        # Envoy gets one listener per port whose route config holds them all.
        by_port.setdefault(listener.port, listener)
    return [
        _listener(
            config,
            port,
            [listener for listener in config.identity.listeners if listener.port == port],
        )
        for port in sorted(by_port)
    ]


def listener_name(port: int) -> str:
    return f"0.0.0.0_{port}"


def _listener(
    config: WaypointConfig, port: int, listeners: list[GatewayListener]
) -> listener_pb2.Listener:
    base = rbac.http_configs(config, None)
    virtual_hosts, overrides = _virtual_hosts(config, port, listeners, base)
    # Every action some virtual host overrides needs a filter to override.
    rbac_filters = []
    for name in _ordered_names({*base, *overrides}):
        rbac_filters.append(
            hcm_pb2.HttpFilter(name=name, typed_config=typed(base.get(name, http_rbac_pb2.RBAC())))
        )
    route_config = route_pb2.RouteConfiguration(
        name=f"http.{port}",
        validate_clusters=boolean(False),
        max_direct_response_body_size_bytes=uint32(routes.MAX_DIRECT_RESPONSE_BODY),
        virtual_hosts=virtual_hosts,
    )
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"outbound_0.0.0.0_{port}",
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        # ztunnel connects with the caller's own address: that is the client.
        use_remote_address=boolean(True),
        # Domains are host names; clients add the service port to Host.
        strip_any_host_port=True,
        normalize_path=boolean(True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
        stream_idle_timeout=duration(0),
        upgrade_configs=[hcm_pb2.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        server_name=filters.SERVER_NAME,
        server_header_transformation=hcm_pb2.HttpConnectionManager.OVERWRITE,
        route_config=route_config,
        http_filters=[*rbac_filters, *filters.core_http_filters(), filters.router()],
    )
    return listener_pb2.Listener(
        name=listener_name(port),
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address="0.0.0.0", port_value=port)
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(name=filters.HCM, typed_config=typed(manager))
                ]
            )
        ],
    )


def _ordered_names(names_: set[str]) -> list[str]:
    order = [rbac.filter_name(action, http=True) for action in rbac.ACTION_ORDER]
    return [name for name in order if name in names_]


def _virtual_hosts(
    config: WaypointConfig,
    port: int,
    listeners: list[GatewayListener],
    base: dict[str, http_rbac_pb2.RBAC],
) -> tuple[list[rc.VirtualHost], set[str]]:
    identity = config.identity
    claimed: set[str] = set()
    hosts: list[rc.VirtualHost] = []
    overrides: set[str] = set()
    all_routes: list[HTTPRoute | GRPCRoute] = [*config.http_routes, *config.grpc_routes]
    for listener in listeners:
        per_domain = gateway_api.gateway_listener_rules(
            all_routes,
            identity.namespace,
            identity.name,
            listener,
            identity.domain_suffix,
            config.reference_grants,
        )
        for domain, rules in per_domain.items():
            if domain in claimed:
                continue
            claimed.add(domain)
            builder = routes.RouteBuilder(config, domain, port)
            hosts.append(
                rc.VirtualHost(
                    name=f"{domain}:{port}", domains=[domain], routes=builder.routes(rules)
                )
            )
    for service in config.bound_services:
        service_port = service.port(port)
        if service_port is None:
            continue
        domains = [
            domain
            for domain in _service_domains(service, identity.namespace)
            if domain not in claimed
        ]
        if not domains:
            continue
        claimed.update(domains)
        builder = routes.RouteBuilder(config, service.hostname, port)
        rules = routes.rules_for(config, service, port)
        built = builder.routes(rules) if rules else []
        if not built:
            built = [builder.default_route(names.outbound_cluster(port, service.hostname))]
        virtual_host = rc.VirtualHost(
            name=f"{service.hostname}:{port}", domains=domains, routes=built
        )
        own = rbac.http_configs(config, service)
        if own != base:
            for name in {*own, *base}:
                overrides.add(name)
                per_route = http_rbac_pb2.RBACPerRoute(rbac=own.get(name, http_rbac_pb2.RBAC()))
                virtual_host.typed_per_filter_config[name].CopyFrom(typed(per_route))
        hosts.append(virtual_host)
    return hosts, overrides


def _service_domains(service: ServiceInfo, gateway_namespace: str) -> list[str]:
    """The names clients use for a service: FQDN and the shorter Kubernetes forms."""
    if service.kind != "Service":
        return [service.hostname]
    short = [f"{service.name}.{service.namespace}.svc", f"{service.name}.{service.namespace}"]
    if service.namespace == gateway_namespace:
        short.append(service.name)
    return [service.hostname, *short]
