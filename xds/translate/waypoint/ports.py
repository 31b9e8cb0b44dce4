"""Which application protocol a service port carries, as Istio infers it.

Order: a UDP port is UDP; then ``appProtocol``; then the port name, whose
prefix before the first ``-`` names the protocol (``http-web``, ``grpc``);
unknown or unnamed ports are sniffed. ServiceEntry ports state the protocol
outright. The result decides the waypoint chains: HTTP ports get the L7
chain, TCP-like ports the TCP chain, unknown ports both behind http_inspector.
"""

from __future__ import annotations

from xds.model.core import Protocol, ServicePort
from xds.translate.waypoint.inputs import PortProtocol

_BY_NAME = {
    "http": PortProtocol.HTTP,
    "http_proxy": PortProtocol.HTTP,
    "http2": PortProtocol.HTTP2,
    "grpc": PortProtocol.GRPC,
    "grpc-web": PortProtocol.GRPC_WEB,
    "tcp": PortProtocol.TCP,
    "tls": PortProtocol.TLS,
    "https": PortProtocol.TLS,
    "mongo": PortProtocol.TCP,
    "mysql": PortProtocol.TCP,
    "redis": PortProtocol.TCP,
    "udp": PortProtocol.UDP,
}
_KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": PortProtocol.HTTP2,
    "kubernetes.io/ws": PortProtocol.HTTP,
    "kubernetes.io/wss": PortProtocol.TLS,
}
# Server-first protocols on their usual ports: sniffing would stall them.
_WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})


def from_name(name: str) -> PortProtocol:
    """A protocol name (ServiceEntry ``protocol``, ``appProtocol``), case-insensitive."""
    return _BY_NAME.get(name.lower(), PortProtocol.UNKNOWN)


def service_port_protocol(port: ServicePort) -> PortProtocol:
    if port.protocol is Protocol.UDP:
        return PortProtocol.UDP
    if port.protocol is Protocol.SCTP:
        return PortProtocol.TCP
    if port.app_protocol:
        known = _KUBERNETES_APP_PROTOCOLS.get(port.app_protocol)
        return known if known is not None else from_name(port.app_protocol)
    name = port.name.lower()
    if name.startswith("grpc-web"):
        return PortProtocol.GRPC_WEB
    protocol = from_name(name.split("-", 1)[0])
    if protocol is PortProtocol.UNKNOWN and port.port in _WELL_KNOWN_TCP_PORTS:
        return PortProtocol.TCP
    return protocol
