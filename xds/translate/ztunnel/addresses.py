"""IP addresses and gateway addresses in their workload-API wire form.

IPs travel as raw bytes (4 for IPv4, 16 for IPv6; ztunnel rejects anything
else), never as text, and never as IPv4-mapped IPv6.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address

from xds.model.meta import IPAddress
from xds.model.networking import IPNetwork
from xds.proto.istio.workload import workload_pb2 as wl
from xds.translate.binding import WaypointAddress


def parse_ip(text: str) -> IPAddress | None:
    """The IP written in ``text`` (no prefix), or ``None``."""
    try:
        return ip_address(text)
    except ValueError:
        return None


def network_address(network: str, ip: IPAddress) -> wl.NetworkAddress:
    return wl.NetworkAddress(network=network, address=ip.packed)


def network_address_from_cidr(network: str, cidr: IPNetwork) -> wl.NetworkAddress:
    """A ServiceEntry address: ``length`` only for a real prefix, not a single host."""
    address = wl.NetworkAddress(network=network, address=cidr.network_address.packed)
    if cidr.prefixlen != cidr.max_prefixlen:
        address.length = cidr.prefixlen
    return address


def gateway_address(address: WaypointAddress) -> wl.GatewayAddress:
    """A waypoint's address as ``Workload.waypoint`` / ``Service.waypoint`` carry it."""
    if address.hostname is not None:
        return wl.GatewayAddress(
            hostname=wl.NamespacedHostname(namespace=address.namespace, hostname=address.hostname),
            hbone_mtls_port=address.hbone_port,
        )
    assert address.ip is not None  # WaypointAddress holds exactly one of the two
    return wl.GatewayAddress(
        address=network_address(address.network, address.ip), hbone_mtls_port=address.hbone_port
    )


def workload_aliases(network: str, ips: Iterable[IPAddress]) -> tuple[str, ...]:
    """``<network>/<ip>`` per address, the extra names istiod gives a Workload resource."""
    return tuple(f"{network}/{ip}" for ip in ips)


def service_aliases(addresses: Iterable[wl.NetworkAddress]) -> tuple[str, ...]:
    """``<network>/<ip>``, or ``<network>/<ip>/<len>`` for a CIDR VIP."""
    aliases = []
    for address in addresses:
        ip = _ip_from_bytes(address.address)
        if address.HasField("length"):
            aliases.append(f"{address.network}/{ip}/{address.length}")
        else:
            aliases.append(f"{address.network}/{ip}")
    return tuple(aliases)


def _ip_from_bytes(raw: bytes) -> IPAddress:
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)
