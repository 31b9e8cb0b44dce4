"""Monitoring-port endpoints: readiness, metrics, version and the debug views.

Views are computed from the same state the streams use (connection sessions
and the ConfigStore), so what they show is what the proxies were sent.

Every ``/debug`` path goes through ``DebugAccess`` first (istiod's
``allowAuthenticatedOrLocalhost`` + ``AuthorizeDebugRequest``): loopback
callers and identities of the system namespace may read everything; other
identities only ``config_dump``, and only for proxies of their own namespace;
anyone else gets 401 (no or bad token) or 403. The views themselves are
synchronous functions of a request and a ``DebugCaller``, so that the
``istio.io/debug`` ADS type can replay a path against them (``replay``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from google.protobuf import json_format
from google.protobuf.message import Message
from prometheus_client import REGISTRY, generate_latest

from xds import logs
from xds.security.authn import AuthenticationError, Authenticator
from xds.serving.ads import Connection, ConnectionRegistry
from xds.serving.http import READ_ONLY, Handler, HttpError, HttpRequest, HttpResponse
from xds.serving.introspection import (
    connection_row,
    is_loopback_peer,
    proxies,
    sync_status,
    watched_names,
)
from xds.serving.store import ConfigStore
from xds.type_urls import SECRET
from xds.version import __version__

log = logging.getLogger("xds.debug")

Decoder = Callable[[str, bytes], Message]
"""(type_url, body) -> the decoded protobuf message, for JSON views."""

# What callers outside the system namespace may read (istiod's activeNamespaceDebuggers,
# minus ndsz/edsz, which we do not have).
NAMESPACED_PATHS = frozenset({"/debug/config_dump"})


@dataclass(frozen=True)
class DebugCaller:
    """Who is asking: ``namespace`` None may see everything, else only that namespace."""

    namespace: str | None = None

    def may_read(self, path: str) -> bool:
        return self.namespace is None or path in NAMESPACED_PATHS

    def may_see(self, connection: Connection) -> bool:
        return self.namespace is None or connection.node.namespace == self.namespace


EVERYTHING = DebugCaller()

View = Callable[[HttpRequest, DebugCaller], object]
"""A debug view: the JSON value to answer (anything ``HttpResponse.json`` takes); raises
``LookupError`` (404) or ``ValueError`` (400)."""


class DebugAccess:
    """Decides who may read ``/debug``: loopback, or a bearer token's identity.

    ``authenticator`` is the TLS port's (None when that port is off: then
    only loopback callers get in). Refusals never echo the token."""

    def __init__(self, authenticator: Authenticator | None, system_namespace: str) -> None:
        self._authenticator = authenticator
        self._system_namespace = system_namespace

    async def __call__(self, request: HttpRequest) -> DebugCaller | HttpResponse:
        if is_loopback_peer(request.peer):
            return EVERYTHING
        header = request.headers.get("authorization")
        if header is None or self._authenticator is None:
            return self._refuse(
                request,
                401,
                "debug endpoints answer loopback callers and "
                "callers sending 'Authorization: Bearer <token>'",
            )
        metadata = [("authorization", header)]
        if "clusterid" in request.headers:
            metadata.append(("clusterid", request.headers["clusterid"]))
        try:
            caller = await self._authenticator.authenticate(metadata, request.peer)
        except AuthenticationError as e:
            return self._refuse(request, 401, str(e))
        if caller.identity is None:
            return self._refuse(request, 401, "debug endpoints need an authenticated identity")
        if caller.identity.namespace == self._system_namespace:
            return EVERYTHING
        restricted = DebugCaller(caller.identity.namespace)
        if not restricted.may_read(request.path):
            return self._refuse(
                request,
                403,
                f"{caller.identity} may read only "
                f"{', '.join(sorted(NAMESPACED_PATHS))} for "
                "proxies of its own namespace",
            )
        return restricted

    @staticmethod
    def _refuse(request: HttpRequest, status: int, reason: str) -> HttpResponse:
        log.warning(
            "debug request refused",
            extra={"path": request.path, "peer": request.peer, "status": status, "reason": reason},
        )
        return HttpResponse.text(reason + "\n", status)


class DebugEndpoints:
    def __init__(
        self,
        *,
        ready: asyncio.Event,
        connections: ConnectionRegistry,
        store: ConfigStore,
        decode: Decoder,
        access: DebugAccess | None = None,
        extra: Mapping[str, Callable[[HttpRequest], object]] | None = None,
    ) -> None:
        """``extra`` adds views (path -> request -> JSON value) that need no caller,
        e.g. the mesh model's; ``access`` defaults to loopback callers only."""
        self._ready = ready
        self._connections = connections
        self._store = store
        self._decode = decode
        self._access = access or DebugAccess(None, "")
        self._views: dict[str, tuple[View, str]] = {
            "/debug/syncz": (
                self._syncz,
                "per proxy and type: nonces sent and ACKed, "
                "errors (istiod's SyncStatus); ?namespace=",
            ),
            "/debug/connections": (self._connections_view, "connected streams"),
            "/debug/adsz": (self._adsz, "connected streams and what each watches; ?proxyID="),
            "/debug/config_dump": (
                self._config_dump,
                "what a proxy was sent, decoded; ?proxyID=<pod>.<namespace>",
            ),
            "/debug/loglevel": (
                self._loglevel,
                "log levels per scope; ?level=ads:debug,default:info",
            ),
        }
        for path, view in (extra or {}).items():
            self._views[path] = (
                _ignoring_caller(view),
                (view.__doc__ or "").strip().split("\n")[0],
            )
        self._views["/debug/list"] = (
            self._list,
            "the endpoint names, as istiod's list (istioctl x internal-debug --list)",
        )

    def routes(self) -> dict[str, Handler]:
        routes: dict[str, Handler] = {
            "/ready": self._readiness,
            "/metrics": self._metrics,
            "/version": self._version,
            "/debug": self._guarded(self._index),
            "/debug/": self._guarded(self._index),
        }
        for path in self._views:
            routes[path] = self._guarded(self.replay_request)
        return routes

    def replay(self, target: str, caller: DebugCaller) -> HttpResponse:
        """Answer ``<path>?<query>`` (relative to ``/debug/``) as if it had come over HTTP
        from ``caller``: the ``istio.io/debug`` ADS type."""
        url = urlsplit("/debug/" + target.lstrip("/"))
        request = HttpRequest("GET", url.path, parse_qs(url.query, keep_blank_values=True), {}, "")
        if not caller.may_read(request.path):
            return HttpResponse.text(
                f"{request.path} is not available to callers outside the system namespace\n", 403
            )
        return self.replay_request(request, caller)

    def replay_request(self, request: HttpRequest, caller: DebugCaller) -> HttpResponse:
        if request.path in ("/debug", "/debug/"):
            return self._index(request, caller)
        entry = self._views.get(request.path)
        if entry is None:
            # Go's ServeMux text: istioctl looks for it to tell "unknown type".
            return HttpResponse.text("404 page not found\n", 404)
        view, _ = entry
        try:
            value = view(request, caller)
        except HttpError as e:
            return HttpResponse.json({"error": str(e)}, status=e.status)
        except LookupError as e:
            return HttpResponse.json({"error": str(e).strip("'\"")}, status=404)
        except ValueError as e:
            return HttpResponse.json({"error": str(e)}, status=400)
        return HttpResponse.json(value, pretty="pretty" in request.query)

    def _guarded(self, answer: Callable[[HttpRequest, DebugCaller], HttpResponse]) -> Handler:
        """``answer`` behind ``DebugAccess``."""

        async def handler(request: HttpRequest) -> HttpResponse:
            caller = await self._access(request)
            if isinstance(caller, HttpResponse):
                return caller
            return answer(request, caller)

        return handler

    async def _readiness(self, request: HttpRequest) -> HttpResponse:
        if self._ready.is_set():
            return HttpResponse.text("ready\n")
        return HttpResponse.text("not ready: config sources have not synced\n", 503)

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, generate_latest(REGISTRY), "text/plain; version=0.0.4")

    async def _version(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"version": __version__})

    def _index(self, request: HttpRequest, caller: DebugCaller) -> HttpResponse:
        # Only callers that may read everything get here (see ``DebugCaller.may_read``).
        endpoints = {path: help for path, (_, help) in sorted(self._views.items())}
        return HttpResponse.json({"endpoints": endpoints}, pretty=True)

    # -- views ------------------------------------------------------------------

    def _list(self, request: HttpRequest, caller: DebugCaller) -> list[str]:
        return sorted(path.removeprefix("/debug/") for path in self._views if path != "/debug/list")

    def _visible(self, caller: DebugCaller) -> list[Connection]:
        return [c for c in self._connections if caller.may_see(c)]

    def _syncz(self, request: HttpRequest, caller: DebugCaller) -> list[dict[str, object]]:
        namespace = request.arg("namespace")
        return [
            sync_status(c)
            for c in proxies(self._connections)
            if caller.may_see(c) and (not namespace or c.node.namespace == namespace)
        ]

    def _connections_view(self, request: HttpRequest, caller: DebugCaller) -> dict[str, object]:
        rows = [connection_row(c) for c in self._visible(caller)]
        return {"totalClients": len(rows), "clients": rows}

    def _adsz(self, request: HttpRequest, caller: DebugCaller) -> dict[str, object]:
        proxy = request.arg("proxyID")
        connections = [c for c in self._visible(caller) if not proxy or _is(c, proxy)]
        if proxy and not connections:
            raise LookupError(f"proxy {proxy!r} is not connected to this instance")
        rows = [{**connection_row(c), "watches": watched_names(c)} for c in connections]
        return {"totalClients": len(rows), "clients": rows}

    def _config_dump(
        self, request: HttpRequest, caller: DebugCaller
    ) -> dict[str, list[dict[str, object]]]:
        """What a connected proxy was given, decoded, by type (secrets redacted)."""
        proxy = request.arg("proxyID")
        if not proxy:
            raise ValueError("pass ?proxyID=<pod>.<namespace>")
        for connection in self._visible(caller):
            if _is(connection, proxy):
                return render_scope(self._store, connection.scope, self._decode)
        # The same answer whether the proxy is elsewhere or not visible to the
        # caller: a namespace-restricted caller learns nothing about others.
        raise LookupError(f"proxy {proxy!r} is not connected to this instance")

    def _loglevel(self, request: HttpRequest, caller: DebugCaller) -> dict[str, str]:
        """GET reads the levels; PUT or POST with ``?level=`` (or the same as the body)
        changes them: a GET never changes state (a crawler, a prefetch, a link)."""
        spec = request.arg("level")
        if request.method in ("PUT", "POST"):
            spec = spec or request.body.decode("utf-8", "replace").strip()
            if not spec:
                raise HttpError(400, "give the levels: ?level=ads:debug,default:info")
            logs.set_levels(spec)  # ValueError -> 400
            log.info("log levels changed", extra={"levels": spec, "peer": request.peer})
        elif spec:
            raise HttpError(
                405,
                "changing log levels takes PUT (or POST): "
                f"curl -X PUT '{request.path}?level={spec}'",
            )
        return logs.current_levels()

    def methods(self) -> dict[str, frozenset[str]]:
        """Routes that take more than GET and HEAD (for ``HttpServer``)."""
        return {"/debug/loglevel": READ_ONLY | {"PUT", "POST"}}


def _is(connection: Connection, proxy: str) -> bool:
    return proxy in (connection.node.id, connection.node.pod_name)


def _ignoring_caller(view: Callable[[HttpRequest], object]) -> View:
    def answer(request: HttpRequest, caller: DebugCaller) -> object:
        return view(request)

    return answer


def render_scope(
    store: ConfigStore, scope: str, decode: Decoder
) -> dict[str, list[dict[str, object]]]:
    """Every resource of a scope as protobuf JSON, grouped by type URL.

    Secrets are left out: private keys never leave the process through a
    debug view or a log."""
    view = store.view(scope)
    result: dict[str, list[dict[str, object]]] = {}
    for type_url in store.types(scope):
        if type_url == SECRET:
            continue
        result[type_url] = [
            {
                "name": name,
                "resource": json_format.MessageToDict(
                    decode(type_url, resource.body), preserving_proto_field_name=False
                ),
            }
            for name, resource in sorted(view.resources(type_url).items())
        ]
    return result
