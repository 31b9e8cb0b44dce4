"""Monitoring-port endpoints: readiness, metrics, version and the debug views.

Views are computed from the same state the streams use (connection sessions
and the ConfigStore), so what they show is what the proxies were sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from prometheus_client import REGISTRY, generate_latest

from xds import __version__, logs
from xds.serving.ads import Connection, ConnectionRegistry
from xds.serving.http import Guard, Handler, HttpRequest, HttpResponse
from xds.serving.store import ConfigStore
from xds.type_urls import SECRET, short_name

Decoder = Callable[[str, bytes], Any]
"""(type_url, body) -> the decoded protobuf message, for JSON views."""


def loopback_only(request: HttpRequest) -> HttpResponse | None:
    """Debug views reveal the mesh's topology; keep them to local callers
    (istiod's advisories: never expose debug endpoints unauthenticated)."""
    try:
        if ipaddress.ip_address(request.peer).is_loopback:
            return None
    except ValueError:
        pass
    return HttpResponse.text("debug endpoints answer loopback callers only\n", 403)


def connection_summary(connection: Connection) -> dict[str, Any]:
    return {
        "connection_id": connection.id,
        "proxy": connection.node.id,
        "proxy_type": connection.node.type.value,
        "ip": connection.node.ip,
        "identity": connection.identity,
        "scope": connection.scope,
        "peer": connection.peer,
        "delta": connection.delta,
    }


def syncz(connections: ConnectionRegistry) -> list[dict[str, Any]]:
    rows = []
    for connection in connections:
        types = {}
        for type_url, status in connection.statuses.items():
            types[short_name(type_url)] = {
                "type_url": type_url,
                "state": status.state,
                "sent_nonce": status.sent_nonce,
                "acked_nonce": status.acked_nonce,
                "nacked_nonce": status.nacked_nonce,
                "last_error": status.last_error,
                "responses": status.responses,
                "acks": status.acks,
                "nacks": status.nacks,
            }
        rows.append({**connection_summary(connection), "types": types})
    return rows


class DebugEndpoints:
    def __init__(self, *, ready: asyncio.Event, connections: ConnectionRegistry,
                 store: ConfigStore, decode: Decoder,
                 extra: dict[str, Callable[[HttpRequest], Any]] | None = None) -> None:
        self._ready = ready
        self._connections = connections
        self._store = store
        self._decode = decode
        self._extra = extra or {}

    def routes(self) -> dict[str, Handler]:
        routes: dict[str, Handler] = {
            "/ready": self._readiness,
            "/metrics": self._metrics,
            "/version": self._version,
            "/debug": self._index,
            "/debug/syncz": self._json(lambda r: syncz(self._connections)),
            "/debug/connections": self._json(
                lambda r: [connection_summary(c) for c in self._connections]),
            "/debug/adsz": self._json(self._adsz),
            "/debug/config_dump": self._json(self._config_dump),
            "/debug/loglevel": self._loglevel,
        }
        for path, view in self._extra.items():
            routes[path] = self._json(view)
        return routes

    def guards(self) -> dict[str, Guard]:
        return {"/debug": loopback_only}

    async def _readiness(self, request: HttpRequest) -> HttpResponse:
        if self._ready.is_set():
            return HttpResponse.text("ready\n")
        return HttpResponse.text("not ready: config sources have not synced\n", 503)

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, generate_latest(REGISTRY), "text/plain; version=0.0.4")

    async def _version(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"version": __version__})

    async def _index(self, request: HttpRequest) -> HttpResponse:
        paths = sorted(p for p in self.routes() if p.startswith("/debug/"))
        return HttpResponse.json({"endpoints": paths}, pretty=True)

    async def _loglevel(self, request: HttpRequest) -> HttpResponse:
        spec = request.arg("level")
        if spec:
            try:
                logs.set_levels(spec)
            except ValueError as e:
                return HttpResponse.text(f"{e}\n", 400)
        return HttpResponse.json(logs.current_levels())

    def _json(self, view: Callable[[HttpRequest], Any]) -> Handler:
        async def handler(request: HttpRequest) -> HttpResponse:
            try:
                value = view(request)
            except LookupError as e:
                return HttpResponse.json({"error": str(e).strip("'\"")}, status=404)
            return HttpResponse.json(value, pretty="pretty" in request.query)

        return handler

    def _adsz(self, request: HttpRequest) -> Any:
        rows = []
        for connection in self._connections:
            watched = {}
            for type_url, watch in connection.session.watches.items():
                names = getattr(watch, "names", ())
                watched[short_name(type_url)] = {
                    "wildcard": getattr(watch, "wildcard", False),
                    "names": sorted(names),
                }
            rows.append({**connection_summary(connection), "watches": watched})
        return {"total": len(rows), "clients": rows}

    def _config_dump(self, request: HttpRequest) -> Any:
        """What a connected proxy was given, decoded, by type (secrets redacted)."""
        proxy = request.arg("proxyID")
        if not proxy:
            raise LookupError("pass ?proxyID=<pod>.<namespace>")
        for connection in self._connections:
            if connection.node.id == proxy or connection.node.pod_name == proxy:
                return render_scope(self._store, connection.scope, self._decode)
        raise LookupError(f"no connected proxy {proxy!r}")


def render_scope(store: ConfigStore, scope: str, decode: Decoder) -> dict[str, list[Any]]:
    """Every resource of a scope as protobuf JSON, grouped by type URL.

    Secrets are left out: private keys never leave the process through a
    debug view or a log."""
    view = store.view(scope)
    result: dict[str, list[Any]] = {}
    for type_url in store.types(scope):
        if type_url == SECRET:
            continue
        result[type_url] = [
            {"name": name,
             "resource": json_format.MessageToDict(decode(type_url, resource.body),
                                                   preserving_proto_field_name=False)}
            for name, resource in sorted(view.resources(type_url).items())]
    return result
