"""Parsers for core Kubernetes kinds (Namespace, Node, Pod, Service, ServiceAccount,
EndpointSlice, Secret)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import replace

from xds.model.core import (
    CREDENTIAL_KEYS,
    AddressType,
    ContainerPort,
    EndpointSlice,
    InternalTrafficPolicy,
    IPFamily,
    Namespace,
    Node,
    Pod,
    PodPhase,
    Protocol,
    Secret,
    Service,
    ServiceAccount,
    ServicePort,
    ServiceType,
    SliceEndpoint,
    SlicePort,
    TargetRef,
)
from xds.model.frozen import EMPTY_LABELS, FrozenMap
from xds.model.meta import IPAddress, ObjectMeta, parse_ip
from xds.model.parse.reader import Reader

# IANA service name, as the API server validates named ports: at most 15
# characters, lowercase alphanumerics and "-", at least one letter.
_PORT_NAME = re.compile(r"(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")


def parse_namespace(doc: Reader, meta: ObjectMeta) -> Namespace:
    return Namespace(meta=meta)


def parse_node(doc: Reader, meta: ObjectMeta) -> Node:
    return Node(meta=meta)


def parse_service_account(doc: Reader, meta: ObjectMeta) -> ServiceAccount:
    return ServiceAccount(meta=meta)


def parse_secret(doc: Reader, meta: ObjectMeta) -> Secret:
    """``data`` (base64, as the API server returns it) and ``stringData`` (as a manifest
    may have it; it wins, as the API server merges it). Errors never quote a value."""
    values: dict[str, bytes] = {}
    for section, decode in (("data", _base64), ("stringData", str.encode)):
        raw = doc.raw(section)
        if raw is None:
            continue
        if not isinstance(raw, Mapping):
            doc.fail("expected an object of keys to values", section)
        for key, value in raw.items():
            if str(key) not in CREDENTIAL_KEYS or value is None:
                continue
            if not isinstance(value, str):
                doc.fail("expected a string", f"{section}.{key}")
            try:
                values[str(key)] = decode(value)
            except (binascii.Error, ValueError):
                doc.fail("not valid base64", f"{section}.{key}")
    # `kubectl apply` copies the whole Secret, data included, into an annotation.
    return Secret(meta=replace(meta, annotations=EMPTY_LABELS), data=FrozenMap(values))


def _base64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _container_ports(container: Reader) -> list[ContainerPort]:
    return [
        ContainerPort(
            port=port.port("containerPort"),
            name=port.string("name"),
            protocol=port.enum("protocol", Protocol, Protocol.TCP),
        )
        for port in container.items("ports")
    ]


def _pod_ips(status: Reader) -> tuple[IPAddress, ...]:
    entries = status.items("podIPs")
    if entries:
        return tuple(entry.ip("ip") for entry in entries)
    if status.string("podIP"):
        return (status.ip("podIP"),)
    return ()


def parse_pod(doc: Reader, meta: ObjectMeta) -> Pod:
    spec = doc.obj("spec")
    status = doc.obj("status")
    ports = [port for container in spec.items("containers") for port in _container_ports(container)]
    # Native sidecars (init containers that keep running) serve traffic too.
    for init in spec.items("initContainers"):
        if init.string("restartPolicy") == "Always":
            ports.extend(_container_ports(init))
    return Pod(
        meta=meta,
        node_name=spec.string("nodeName"),
        # "serviceAccount" is the deprecated alias; the API server fills in "default".
        service_account=spec.string("serviceAccountName")
        or spec.string("serviceAccount")
        or "default",
        host_network=spec.boolean("hostNetwork"),
        phase=status.enum("phase", PodPhase, PodPhase.PENDING),
        pod_ips=_pod_ips(status),
        ready=any(
            condition.string("type") == "Ready" and condition.string("status") == "True"
            for condition in status.items("conditions")
        ),
        terminating=doc.obj("metadata").has("deletionTimestamp"),
        container_ports=tuple(ports),
    )


def _target_port(port: Reader, default: int) -> int | str:
    value = port.raw("targetPort")
    if value is None:
        return default  # the API server defaults targetPort to port
    if isinstance(value, str):
        if not _PORT_NAME.fullmatch(value):
            port.fail(f'expected a port number 1-65535 or a port name, got "{value}"', "targetPort")
        return value
    return port.integer("targetPort", default, 1, 65535, "a port number 1-65535 or a port name")


def _service_port(port: Reader) -> ServicePort:
    number = port.port("port")
    return ServicePort(
        port=number,
        target_port=_target_port(port, number),
        name=port.string("name"),
        protocol=port.enum("protocol", Protocol, Protocol.TCP),
        app_protocol=port.opt_string("appProtocol"),
    )


def _cluster_ips(spec: Reader) -> tuple[tuple[IPAddress, ...], bool]:
    """The parsed cluster IPs, and whether the Service is headless."""
    if spec.has("clusterIPs"):
        field, values = "clusterIPs", spec.strings("clusterIPs")
    else:
        field, values = "clusterIP", (spec.string("clusterIP"),)
    ips = []
    for index, value in enumerate(values):
        if value in ("", "None"):
            continue
        ip = parse_ip(value)
        if ip is None:
            where = f"{field}[{index}]" if field == "clusterIPs" else field
            spec.fail(f'expected an IP address, "None" or "", got "{value}"', where)
        ips.append(ip)
    return tuple(ips), "None" in values


def parse_service(doc: Reader, meta: ObjectMeta) -> Service:
    spec = doc.obj("spec")
    cluster_ips, headless = _cluster_ips(spec)
    return Service(
        meta=meta,
        type=spec.enum("type", ServiceType, ServiceType.CLUSTER_IP),
        cluster_ips=cluster_ips,
        headless=headless,
        selector=spec.string_map("selector"),
        ports=tuple(_service_port(port) for port in spec.items("ports")),
        ip_families=spec.enums("ipFamilies", IPFamily),
        internal_traffic_policy=spec.enum(
            "internalTrafficPolicy", InternalTrafficPolicy, InternalTrafficPolicy.CLUSTER
        ),
        traffic_distribution=spec.opt_string("trafficDistribution"),
        publish_not_ready_addresses=spec.boolean("publishNotReadyAddresses"),
        external_name=spec.string("externalName"),
    )


def _slice_endpoint(endpoint: Reader, address_type: AddressType) -> SliceEndpoint:
    addresses = endpoint.strings("addresses")
    if address_type is not AddressType.FQDN:
        normalised = []
        for index, address in enumerate(addresses):
            ip = parse_ip(address)
            if ip is None or (ip.version == 4) != (address_type is AddressType.IPV4):
                endpoint.fail(
                    f'expected an {address_type.value} address, got "{address}"',
                    f"addresses[{index}]",
                )
            normalised.append(str(ip))
        addresses = tuple(normalised)
    target = endpoint.obj("targetRef")
    return SliceEndpoint(
        addresses=addresses,
        ready=endpoint.obj("conditions").opt_boolean("ready"),
        target_ref=TargetRef(
            kind=target.required_string("kind"),
            name=target.required_string("name"),
            namespace=target.string("namespace"),
            uid=target.string("uid"),
        )
        if endpoint.has("targetRef")
        else None,
        node_name=endpoint.string("nodeName"),
    )


def parse_endpoint_slice(doc: Reader, meta: ObjectMeta) -> EndpointSlice:
    address_type = doc.opt_enum("addressType", AddressType)
    if address_type is None:
        doc.fail("required field is missing", "addressType")
    return EndpointSlice(
        meta=meta,
        address_type=address_type,
        endpoints=tuple(_slice_endpoint(e, address_type) for e in doc.items("endpoints")),
        ports=tuple(
            SlicePort(
                name=port.opt_string("name"),
                port=port.opt_port("port"),
                protocol=port.enum("protocol", Protocol, Protocol.TCP),
            )
            for port in doc.items("ports")
        ),
    )
