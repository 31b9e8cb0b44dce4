"""``Port.app_protocol``: the application protocol istiod infers for a Service port.

Sent as istiod does. ``Port.app_protocol`` (field 3) is new in ztunnel master:
ztunnel up to 1.31 skips it as an unknown field, and master only reads values
0-5, which are all we produce, so sending it cannot NACK anything. It is also
never part of a Workload's per-service port list (istiod leaves it out there).
"""

from __future__ import annotations

from xds.model.core import Protocol, ServicePort
from xds.proto.istio.workload import workload_pb2 as wl

# Protocol names as Istio parses them (case-insensitive), mapped to the
# workload API enum; the rest of Istio's protocols (UDP, GRPC-Web, Mongo,
# Redis, MySQL, HTTP_PROXY, unknown) have no enum value and become UNKNOWN.
_APP_PROTOCOL = {
    "http": wl.HTTP11,
    "http2": wl.HTTP2,
    "grpc": wl.GRPC,
    "tls": wl.TLS,
    "https": wl.TLS,
    "tcp": wl.TCP,
}
_KNOWN_NAMES = frozenset(
    {
        "tcp",
        "udp",
        "grpc",
        "grpc-web",
        "http",
        "http_proxy",
        "http2",
        "https",
        "tls",
        "mongo",
        "redis",
        "mysql",
    }
)
# Ports whose protocol is TCP when nothing else says otherwise (SMTP, DNS,
# MySQL, MongoDB).
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})
# Kubernetes' standard appProtocol values.
_KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": wl.HTTP2,
    "kubernetes.io/ws": wl.HTTP11,
    "kubernetes.io/wss": wl.TLS,
}
_GRPC_WEB = "grpc-web"


def protocol_from_name(name: str) -> int:
    """A ServiceEntry port's ``protocol`` (the whole value, case-insensitive)."""
    return _APP_PROTOCOL.get(name.lower(), wl.UNKNOWN)


def kube_app_protocol(port: ServicePort) -> int:
    """A Service port's protocol: UDP, else ``appProtocol``, else the port name prefix."""
    if port.protocol is Protocol.UDP:
        return wl.UNKNOWN
    name = port.name
    if port.app_protocol is not None:
        name = port.app_protocol
        if name in _KUBERNETES_APP_PROTOCOLS:
            return _KUBERNETES_APP_PROTOCOLS[name]
    if name[: len(_GRPC_WEB)].lower() == _GRPC_WEB:
        return wl.UNKNOWN
    prefix = name.split("-", 1)[0].lower()
    if prefix not in _KNOWN_NAMES and port.port in _WELL_KNOWN_TCP_PORTS:
        return wl.TCP
    return _APP_PROTOCOL.get(prefix, wl.UNKNOWN)
