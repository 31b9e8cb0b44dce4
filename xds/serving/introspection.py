"""What the control plane knows about its streams, in the shapes debugging tools read.

One source for every view: the delivery state each stream's session keeps
(``TypeStatus``: nonces sent, ACKed and NACKed) and the ConfigStore scope the
stream reads. CSDS (``csds.py``), the ``istio.io/debug/*`` ADS types
(``debug_xds.py``) and the HTTP ``/debug/syncz`` endpoint (``debug.py``) all
render from here, so they can never disagree with each other or with what the
proxies were sent.

Secrets are never rendered: their names may appear, their bytes never do.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import platform
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import unquote

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.admin.v3.config_dump_shared_pb2 import (
    ClustersConfigDump,
    ListenersConfigDump,
    RoutesConfigDump,
    ScopedRoutesConfigDump,
)
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2

from xds.resources import Resource
from xds.serving.ads import Connection, ConnectionRegistry
from xds.serving.delta import DeltaWatch
from xds.serving.node import ProxyNode
from xds.serving.session import TypeStatus
from xds.serving.sotw import SotwWatch
from xds.type_urls import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, in_push_order
from xds.version import __version__

CLIENT_CONFIG_TYPE = "type.googleapis.com/envoy.service.status.v3.ClientConfig"

_CONFIG_STATUS = {
    "SYNCED": csds_pb2.SYNCED,
    "STALE": csds_pb2.STALE,
    "NOT_SENT": csds_pb2.NOT_SENT,
    "ERROR": csds_pb2.ERROR,
}
# From the server's side: an unACKed response may or may not have been applied yet.
_CLIENT_STATUS = {
    "SYNCED": config_dump_shared_pb2.ACKED,
    "STALE": config_dump_shared_pb2.UNKNOWN,
    "NOT_SENT": config_dump_shared_pb2.REQUESTED,
    "ERROR": config_dump_shared_pb2.NACKED,
}


# -- who is connected -------------------------------------------------------------


def proxies(connections: ConnectionRegistry) -> list[Connection]:
    """Connected proxies (ztunnels, waypoints), sorted by proxy id.

    Debug clients such as istioctl are left out: their requests are answered
    per request and never create a watch, so a stream without watches is not
    a proxy (istiod likewise skips nodes without proxy metadata)."""
    return sorted((c for c in connections if c.session.watches), key=lambda c: (c.node.id, c.id))


def full_node_id(node: ProxyNode) -> str:
    """The node id as the proxy sent it: ``<type>~<ip>~<pod>.<ns>~<domain>``."""
    return f"{node.type.value}~{node.ip}~{node.pod_name}.{node.namespace}~{node.dns_domain}"


def istio_version(node: ProxyNode) -> str:
    value = node.metadata.get("ISTIO_VERSION", "")
    return value if isinstance(value, str) else ""


def is_loopback_peer(peer: str) -> bool:
    """Whether a peer (grpc's ``ipv4:127.0.0.1:5000``/``ipv6:[::1]:5000``, or a
    bare address as the HTTP server reports it) is on this host."""
    address = unquote(peer)  # grpc may percent-encode IPv6 brackets
    kind, sep, rest = address.partition(":")
    if sep and kind in ("ipv4", "ipv6"):
        address = rest.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def control_plane_identifier(pod_name: str | None = None) -> str:
    """``control_plane.identifier`` exactly as istiod fills it (``IstioControlPlaneInstance``).

    istioctl reads it to label rows and to tell which instance a proxy is on."""
    instance = {
        "Component": "istiod",
        "ID": pod_name or os.environ.get("POD_NAME") or socket.gethostname(),
        "Info": {
            "version": __version__,
            "revision": "",
            "golang_version": "",
            "status": "Clean",
            "tag": __version__,
            # Not in istiod's BuildInfo; extra keys are ignored by its readers.
            "python_version": platform.python_version(),
        },
    }
    return json.dumps(instance, separators=(",", ":"))


# -- delivery state -----------------------------------------------------------------

# Sessions record monotonic times. One fixed offset maps them to wall-clock time, so
# that every view shows the same instant for the same event (a clock step after
# start-up shifts what is displayed, never what is measured).
_WALL_CLOCK_OFFSET = time.time() - time.monotonic()


def wall_time(monotonic: float) -> dt.datetime:
    """A ``time.monotonic()`` reading (what sessions record) as UTC wall-clock time."""
    return dt.datetime.fromtimestamp(monotonic + _WALL_CLOCK_OFFSET, dt.UTC)


def _timestamp(monotonic: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(wall_time(monotonic))
    return stamp


def sent_versions(connection: Connection, type_url: str) -> Mapping[str, str]:
    """Resource name -> version the proxy was last sent (Delta: what it holds)."""
    watch = connection.session.watches.get(type_url)
    if watch is None:
        return {}
    if isinstance(watch, DeltaWatch):
        return watch.client_versions
    return watch.sent_versions


def _type_entry(status: TypeStatus) -> csds_pb2.ClientConfig.GenericXdsConfig:
    """One type's delivery state, as istiod's syncz reports it (no name, no contents)."""
    entry = csds_pb2.ClientConfig.GenericXdsConfig(
        type_url=status.type_url, config_status=_CONFIG_STATUS[status.state]
    )
    if status.sent_at is not None:
        entry.last_updated.CopyFrom(_timestamp(status.sent_at))
    if status.last_error:
        entry.error_state.details = status.last_error
        if status.sent_at is not None:
            entry.error_state.last_update_attempt.CopyFrom(_timestamp(status.sent_at))
    return entry


def client_config(
    connection: Connection,
    *,
    node_id: str | None = None,
    resources: bool = False,
    contents: bool = True,
) -> csds_pb2.ClientConfig:
    """A proxy's state as an ``envoy.service.status.v3.ClientConfig``.

    Per watched type (sorted by type URL, as istiod's syncz) one entry without
    a name carries the type's status; with ``resources`` every resource the
    proxy was sent follows as its own entry (CSDS style): name, version,
    client status and, with ``contents`` and when the store still holds that
    version, the resource itself. Secrets never carry contents.
    """
    node = connection.node
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "CLUSTER_ID": node.cluster_id,
            "NAMESPACE": node.namespace,
            "ISTIO_VERSION": istio_version(node),
        }
    )
    config = csds_pb2.ClientConfig(node=base_pb2.Node(id=node_id or node.id, metadata=metadata))
    view = connection.session.view
    for type_url, status in sorted(connection.statuses.items()):
        summary = _type_entry(status)
        config.generic_xds_configs.append(summary)
        if not resources:
            continue
        for name, version in sorted(sent_versions(connection, type_url).items()):
            entry = config.generic_xds_configs.add()
            entry.CopyFrom(summary)
            entry.name = name
            entry.version_info = version
            entry.client_status = _CLIENT_STATUS[status.state]
            current = view.get(type_url, name)
            if (
                contents
                and type_url != SECRET
                and current is not None
                and current.version == version
            ):
                entry.xds_config.CopyFrom(any_pb2.Any(type_url=type_url, value=current.body))
    return config


def _status_row(status: TypeStatus) -> dict[str, str]:
    row = {
        "sent": status.sent_nonce,
        "acked": status.acked_nonce,
        "nacked": status.nacked_nonce,
        "state": status.state,
        "lastError": status.last_error,
    }
    if status.sent_at is not None:
        row["sentTime"] = wall_time(status.sent_at).isoformat().replace("+00:00", "Z")
    return {key: value for key, value in row.items() if value}


_SYNC_FIELDS = (
    ("cluster", CLUSTER),
    ("listener", LISTENER),
    ("route", ROUTE),
    ("endpoint", ENDPOINT),
)


def sync_status(connection: Connection) -> dict[str, object]:
    """One row of ``/debug/syncz`` in istiod's ``SyncStatus`` JSON shape.

    Like istiod (``omitempty``), empty values are left out; sent/acked values
    are nonces. ``resources`` covers every watched type, ztunnel's included.
    Our additions: ``connection_id``, ``scope`` and a per-type ``state``.
    """
    node = connection.node
    statuses = connection.statuses
    row: dict[str, object] = {
        "cluster_id": node.cluster_id,
        "proxy": node.id,
        "proxy_type": node.type.value,
        "istio_version": istio_version(node),
    }
    for prefix, type_url in _SYNC_FIELDS:
        status = statuses.get(type_url)
        if status is not None:
            row[f"{prefix}_sent"] = status.sent_nonce
            row[f"{prefix}_acked"] = status.acked_nonce
    row["resources"] = {
        type_url: _status_row(status) for type_url, status in sorted(statuses.items())
    }
    row["connection_id"] = connection.id
    row["scope"] = connection.scope
    return {key: value for key, value in row.items() if value != ""}


def connection_row(connection: Connection) -> dict[str, object]:
    """One client of ``/debug/connections`` and ``/debug/adsz`` (istiod's ``AdsClient`` keys
    where they exist)."""
    return {
        "connectionId": connection.id,
        "address": connection.peer,
        "proxy": connection.node.id,
        "node": full_node_id(connection.node),
        "proxy_type": connection.node.type.value,
        "identity": connection.identity,
        "scope": connection.scope,
        "delta": connection.delta,
    }


def watched_names(connection: Connection) -> dict[str, list[str]]:
    """Type URL -> subscribed names; ``"*"`` first for a wildcard subscription."""
    watches: dict[str, list[str]] = {}
    session_watches: Mapping[str, DeltaWatch | SotwWatch] = connection.session.watches
    for type_url, watch in sorted(session_watches.items()):
        names = sorted(watch.names)
        watches[type_url] = ["*", *names] if watch.wildcard else names
    return watches


# -- what a proxy was given ---------------------------------------------------------


def served_types(connection: Connection) -> list[str]:
    """The types the proxy subscribed to, in push order, secrets excluded."""
    return [t for t in in_push_order(connection.session.watches) if t != SECRET]


def served_resources(connection: Connection) -> Iterator[Resource]:
    """Every resource of the proxy's scope for the types it reads, secrets excluded."""
    view = connection.session.view
    for type_url in served_types(connection):
        for _, resource in sorted(view.resources(type_url).items()):
            yield resource


def _packed(resources: Iterable[Resource]) -> list[any_pb2.Any]:
    return [any_pb2.Any(type_url=r.type_url, value=r.body) for r in resources]


def envoy_config_dump(connection: Connection) -> config_dump_pb2.ConfigDump:
    """What a waypoint's Envoy should show in ``/config_dump``, as istiod builds it
    (``connectionConfigDump``): dynamic clusters, listeners and routes; endpoints
    and secrets left out, as Envoy's own dump does by default."""
    view = connection.session.view

    def of(type_url: str) -> list[any_pb2.Any]:
        return _packed(r for _, r in sorted(view.resources(type_url).items()))

    clusters = ClustersConfigDump(
        dynamic_active_clusters=[ClustersConfigDump.DynamicCluster(cluster=c) for c in of(CLUSTER)]
    )
    listeners = ListenersConfigDump(
        dynamic_listeners=[
            ListenersConfigDump.DynamicListener(
                name=name, active_state=ListenersConfigDump.DynamicListenerState(listener=packed)
            )
            for name, packed in zip(sorted(view.resources(LISTENER)), of(LISTENER), strict=True)
        ]
    )
    routes = RoutesConfigDump(
        dynamic_route_configs=[
            RoutesConfigDump.DynamicRouteConfig(route_config=r) for r in of(ROUTE)
        ]
    )
    dump = config_dump_pb2.ConfigDump()
    for section in (
        config_dump_pb2.BootstrapConfigDump(),
        clusters,
        listeners,
        ScopedRoutesConfigDump(),
        routes,
    ):
        dump.configs.add().Pack(section)
    return dump
