"""Resource names of a waypoint: part of the wire contract (waypoint.md §3-§5).

Listener and cluster names are what Envoy, istioctl and dashboards key on, so
they are spelled exactly as istiod spells them.
"""

from __future__ import annotations

from typing import Final

CONNECT_TERMINATE: Final = "connect_terminate"
MAIN_INTERNAL: Final = "main_internal"
CONNECT_ORIGINATE: Final = "connect_originate"
ENCAP: Final = "encap"
# Plaintext original-destination cluster for waypoints whose outbound HBONE is
# done by ztunnel (sandwich); istiod's "PassthroughCluster".
PASSTHROUGH: Final = "PassthroughCluster"
# The listener that takes PROXY-protocol connections from the destination
# ztunnel (inbound binding, waypoint.md §10b).
PROXY_INBOUND: Final = "proxy_inbound"
DIRECT_HTTP: Final = "direct-http"
DIRECT_TCP: Final = "direct-tcp"
# Route target for a destination host that resolves to nothing.
UNKNOWN_SERVICE: Final = "UnknownService"
BLACKHOLE: Final = "BlackHoleCluster"

HBONE_PORT: Final = 15008

INBOUND_VIP: Final = "inbound-vip"
OUTBOUND: Final = "outbound"

# Secrets the waypoint asks for over ADS (pilot-agent's names).
SECRET_WORKLOAD: Final = "default"
SECRET_ROOT_CA: Final = "ROOTCA"

# Filter-state keys that carry the tunnel's facts into the internal listeners.
ORIGINAL_DST_LOCAL_IP: Final = "envoy.filters.listener.original_dst.local_ip"
ORIGINAL_DST_REMOTE_IP: Final = "envoy.filters.listener.original_dst.remote_ip"
CONNECT_AUTHORITY: Final = "io.istio.connect_authority"
PEER_PRINCIPAL: Final = "io.istio.peer_principal"
LOCAL_PRINCIPAL: Final = "io.istio.local_principal"
# istio-proxy's "istio.hashable_string" is unknown to stock Envoy; this built-in
# factory is also hashable, so the value still joins the upstream pool key.
HASHABLE_STRING: Final = "envoy.hashable_string"
# Metadata namespace read by original_dst on internal listeners.
ORIGINAL_DST_METADATA: Final = "envoy.filters.listener.original_dst"
ISTIO_METADATA: Final = "istio"


def subset_key(direction: str, subset: str, host: str, port: int) -> str:
    """istiod's ``BuildSubsetKey``: ``<direction>|<port>|<subset>|<host>``."""
    return f"{direction}|{port}|{subset}|{host}"


def inbound_vip_cluster(port: int, http: bool, host: str, subset: str | None = None) -> str:
    """``inbound-vip|<port>|<http|tcp>[/<subset>]|<host>``: a bound service's cluster."""
    kind = "http" if http else "tcp"
    return subset_key(INBOUND_VIP, f"{kind}/{subset}" if subset else kind, host, port)


def outbound_cluster(port: int, host: str, subset: str | None = None) -> str:
    """``outbound|<port>|<subset>|<host>``: a route target not bound to this waypoint."""
    return subset_key(OUTBOUND, subset or "", host, port)
