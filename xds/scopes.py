"""Which resources each connecting proxy gets, and which types it may ask for.

Every ztunnel shares the mesh-wide scope. A waypoint (or a sandwiched gateway,
which connects as a "router") gets the scope of the Gateway it runs for, named
by the ``gateway.networking.k8s.io/gateway-name`` label in its node metadata.
Secrets travel only on authenticated streams, and only to their owner.
"""

from __future__ import annotations

from xds import type_urls
from xds.resources import ZTUNNEL_SCOPE, waypoint_scope
from xds.serving.ads import Binder, Binding
from xds.serving.node import InvalidNode, ProxyNode, ProxyType
from xds.serving.session import Forbidden, TypeFilter

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

_ZTUNNEL_TYPES = frozenset({type_urls.ADDRESS, type_urls.AUTHORIZATION})
_ENVOY_TYPES = frozenset({type_urls.LISTENER, type_urls.CLUSTER, type_urls.ENDPOINT,
                          type_urls.ROUTE, type_urls.SECRET})


def _only(allowed: frozenset[str], who: str, *, secrets: bool) -> TypeFilter:
    def check(type_url: str) -> str | None:
        if type_url == type_urls.SECRET and not secrets:
            return ("secrets are only served on the authenticated TLS port "
                    "to the identity they belong to")
        if type_url not in allowed:
            return f"{who} streams may not subscribe to {type_url}"
        return None

    return check


def gateway_of(node: ProxyNode) -> str:
    name = node.labels().get(GATEWAY_NAME_LABEL, "")
    if not name:
        raise InvalidNode(f"{node.type.value} node {node.id}: metadata LABELS must carry "
                          f"{GATEWAY_NAME_LABEL} naming the Gateway it serves")
    return name


def plaintext_binder() -> Binder:
    """The unauthenticated port: config for anyone (as istiod's 15010), never secrets."""

    async def bind(node: ProxyNode, caller: object) -> Binding:
        if node.type is ProxyType.ZTUNNEL:
            return Binding(ZTUNNEL_SCOPE, _only(_ZTUNNEL_TYPES, "ztunnel", secrets=False))
        if node.type in (ProxyType.WAYPOINT, ProxyType.ROUTER):
            scope = waypoint_scope(node.namespace, gateway_of(node))
            return Binding(scope, _only(_ENVOY_TYPES, "waypoint", secrets=False))
        raise Forbidden(f"{node.type.value} proxies are not served: this control plane "
                        "serves ambient mode (ztunnel and waypoints) only")

    return bind
