"""Debug views that need the mesh model or the pipeline, and their assembly per process.

``xds.serving`` knows streams and resource bytes only; the views here know
Istio: ``/debug/registryz`` (the model's objects), ``/debug/authorizationz``
(policies as written), ``/debug/ambientz`` (workloads, services and policies
as ztunnels receive them, decoded from the ztunnel scope), ``/debug/push_status``
(the last rebuild) and ``/debug/mesh``. ``debug_endpoints``/``debug_types``
build the HTTP and ADS debug surfaces of one control plane from the same
``DebugParts``, so that both answer alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import ipaddress
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from xds.model.mesh import MeshStore
from xds.model.security import AuthorizationPolicy, PeerAuthentication
from xds.plane.pipeline import PushHistory
from xds.resources import ZTUNNEL_SCOPE, decode
from xds.security.authn import Authenticator
from xds.serving.ads import ConnectionRegistry, DebugView
from xds.serving.debug import DebugAccess, DebugEndpoints
from xds.serving.debug_xds import IstioDebugTypes
from xds.serving.http import HttpRequest
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION

ModelView = Callable[[HttpRequest], Any]


def plain(value: Any) -> Any:
    """A model value (frozen dataclasses, FrozenMaps, enums, IPs, times) as JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return value


def registryz(mesh: MeshStore) -> ModelView:
    def view(request: HttpRequest) -> Any:
        """Model objects by kind and namespace; ?kind=<Kind> lists that kind's objects"""
        kind = request.arg("kind")
        every = mesh.keys()
        if kind:
            keys = sorted(k for k in every if k.kind == kind)
            return {"kind": kind, "objects": [plain(mesh.get_by_key(k)) for k in keys]}
        kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for key in every:
            kinds[key.kind][key.namespace or "(cluster)"] += 1
        return {
            "objects": len(mesh),
            "generation": mesh.generation,
            "kinds": {
                kind: {"total": sum(counts.values()), "namespaces": dict(sorted(counts.items()))}
                for kind, counts in sorted(kinds.items())
            },
        }

    return view


def authorizationz(mesh: MeshStore) -> ModelView:
    def view(request: HttpRequest) -> Any:
        """AuthorizationPolicies and PeerAuthentications as the model holds them"""
        return {
            "authorization_policies": [
                plain(p) for p in sorted(mesh.objects(AuthorizationPolicy), key=_key)
            ],
            "peer_authentications": [
                plain(p) for p in sorted(mesh.objects(PeerAuthentication), key=_key)
            ],
        }

    return view


def _key(obj: AuthorizationPolicy | PeerAuthentication) -> tuple[str, str]:
    return obj.namespace, obj.name


def ambientz(store: ConfigStore) -> ModelView:
    def view(request: HttpRequest) -> Any:
        """Workloads, services and policies as ztunnels receive them (IPs as text)"""
        scope = store.view(ZTUNNEL_SCOPE)
        workloads, services = [], []
        for _, resource in sorted(scope.resources(ADDRESS).items()):
            address = decode(ADDRESS, resource.body)
            kind = address.WhichOneof("type")
            if kind == "workload":
                workloads.append(with_ips(getattr(address, kind)))
            elif kind == "service":
                services.append(with_ips(getattr(address, kind)))
        policies = [
            with_ips(decode(AUTHORIZATION, r.body))
            for _, r in sorted(scope.resources(AUTHORIZATION).items())
        ]
        return {"workloads": workloads, "services": services, "policies": policies}

    return view


_IP_FIELDS = frozenset({"address", "addresses"})


def with_ips(message: Message) -> dict[str, Any]:
    """Protobuf JSON, with the workload API's raw IP bytes as text (JSON would show base64)."""
    as_dict = json_format.MessageToDict(message)
    _rewrite_ips(message, as_dict)
    return as_dict


def _rewrite_ips(message: Message, as_dict: dict[str, Any]) -> None:
    for field, value in message.ListFields():
        key = field.json_name
        if field.type == FieldDescriptor.TYPE_BYTES and field.name in _IP_FIELDS:
            as_dict[key] = [_ip_text(v) for v in value] if field.is_repeated else _ip_text(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and key in as_dict:
            if field.message_type is None or field.message_type.GetOptions().map_entry:
                continue
            if field.is_repeated:
                for item, item_dict in zip(value, as_dict[key], strict=True):
                    _rewrite_ips(item, item_dict)
            else:
                _rewrite_ips(value, as_dict[key])


def _ip_text(raw: bytes) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return raw.hex()


def push_status(pipeline: PushHistory) -> ModelView:
    def view(request: HttpRequest) -> Any:
        """The last rebuild: when, what changed, which scopes it touched, how long it took"""
        last = pipeline.last
        if last is None:
            return {"rebuilds": pipeline.rebuilds}
        return {
            "time": dt.datetime.fromtimestamp(last.finished_at, dt.UTC).isoformat(),
            "full": last.full,
            "objects_changed": last.objects,
            "kinds": list(last.kinds),
            "scopes_touched": list(last.scopes),
            "duration_ms": round(last.seconds * 1000, 3),
            "rebuilds": pipeline.rebuilds,
        }

    return view


def mesh_config(mesh: MeshStore) -> ModelView:
    def view(request: HttpRequest) -> Any:
        """Mesh-wide settings (trust domain, root namespace, cluster id, ...)"""
        return plain(mesh.config)

    return view


@dataclasses.dataclass(frozen=True)
class DebugParts:
    """What the debug surfaces read of a running control plane."""

    ready: asyncio.Event
    connections: ConnectionRegistry
    store: ConfigStore
    mesh: MeshStore
    history: PushHistory
    system_namespace: str
    authenticator: Authenticator | None = None
    """Checks bearer tokens on /debug (None: no TLS port, loopback callers only)."""


def debug_endpoints(parts: DebugParts) -> DebugEndpoints:
    """The HTTP debug views of one control plane (also what ``istio.io/debug`` replays)."""
    return DebugEndpoints(
        ready=parts.ready,
        connections=parts.connections,
        store=parts.store,
        decode=decode,
        access=DebugAccess(parts.authenticator, parts.system_namespace),
        extra={
            "/debug/registryz": registryz(parts.mesh),
            "/debug/authorizationz": authorizationz(parts.mesh),
            "/debug/ambientz": ambientz(parts.store),
            "/debug/push_status": push_status(parts.history),
            "/debug/mesh": mesh_config(parts.mesh),
        },
    )


def debug_types(parts: DebugParts) -> dict[str, DebugView]:
    """The ``istio.io/debug*`` ADS views of one control plane."""
    return IstioDebugTypes(
        parts.connections, debug_endpoints(parts), parts.system_namespace
    ).views()
