"""A minimal asyncio HTTP/1.1 server for the monitoring port (/ready, /metrics, /debug).

The monitoring port answers a handful of small GET requests; a dependency-free
server keeps the process to one event loop and one set of libraries.
Connections are closed after each response.

It faces whoever can reach the port, so every edge is bounded: the head must
arrive within ``READ_TIMEOUT`` and fit in 16 KiB, a body must be declared with a
valid ``Content-Length`` of at most 1 MiB and arrive within ``READ_TIMEOUT``,
at most ``MAX_CONNECTIONS`` are open at once (more get 503 at once), and only
the methods a route takes are accepted (GET and HEAD unless it says otherwise;
405 with ``Allow`` for the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("xds.http")

_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024
READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
READ_ONLY: frozenset[str] = frozenset({"GET", "HEAD"})
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """Raised by a handler or view to answer with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    peer: str
    body: bytes = b""

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class HttpResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: object, *, status: int = 200, pretty: bool = False) -> HttpResponse:
        text = json.dumps(value, indent=2 if pretty else None, sort_keys=pretty, default=str)
        return cls(status, (text + "\n").encode(), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> HttpResponse:
        return cls(status, text.encode())


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
Guard = Callable[[HttpRequest], HttpResponse | None]
"""Returns a refusal for a request it will not let through, else None."""


class HttpServer:
    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        guards: Mapping[str, Guard] | None = None,
        methods: Mapping[str, frozenset[str]] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        """``routes`` maps exact paths, or prefixes ending in "/", to handlers;
        ``guards`` maps path prefixes to checks run before the handler; ``methods`` the
        paths that take more than GET and HEAD."""
        self._routes = dict(routes)
        self._guards = dict(guards or {})
        self._methods = dict(methods or {})
        self._max_connections = max_connections
        self._read_timeout = read_timeout
        self._open = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        self._server = await asyncio.start_server(
            self._connection, host, port, reuse_port=reuse_port or None
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > self._max_connections:
                response = HttpResponse.text("too many connections\n", 503)
                head_only = False
            else:
                response, head_only = await self._respond(reader, writer)
            reason = _REASONS.get(response.status, "")
            head = [
                f"HTTP/1.1 {response.status} {reason}",
                f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}",
                "Connection: close",
                *(f"{k}: {v}" for k, v in response.headers.items()),
            ]
            writer.write(
                ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if head_only else response.body)
            )
            await asyncio.wait_for(writer.drain(), self._read_timeout)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[HttpResponse, bool]:
        """The response, and whether to send its head only (HEAD)."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._read_timeout)
        except (asyncio.LimitOverrunError, TimeoutError):
            return HttpResponse.text("request head too large or too slow\n", 400), False
        if len(head) > _MAX_HEAD:
            return HttpResponse.text("request head too large\n", 400), False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            return HttpResponse.text("malformed request line\n", 400), False
        method = method.upper()
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        declared = headers.get("content-length", "0").strip() or "0"
        if not declared.isdigit():
            return HttpResponse.text(f"bad Content-Length {declared[:40]!r}\n", 400), False
        length = int(declared)
        if length > _MAX_BODY:
            return HttpResponse.text("request body too large\n", 413), False
        body = b""
        if length:
            try:
                body = await asyncio.wait_for(reader.readexactly(length), self._read_timeout)
            except TimeoutError:
                return HttpResponse.text("request body too slow\n", 408), False
        url = urlsplit(target)
        peer = writer.get_extra_info("peername")
        request = HttpRequest(
            method,
            url.path,
            parse_qs(url.query, keep_blank_values=True),
            headers,
            peer[0] if peer else "",
            body,
        )
        handler = self._route(request.path)
        if handler is None:
            return HttpResponse.text(f"no such endpoint: {request.path}\n", 404), False
        allowed = self._methods.get(request.path, READ_ONLY)
        if method not in allowed:
            refusal = HttpResponse.text(f"{method} not allowed on {request.path}\n", 405)
            refusal.headers["Allow"] = ", ".join(sorted(allowed))
            return refusal, False
        for prefix, guard in self._guards.items():
            if request.path.startswith(prefix):
                refusal_ = guard(request)
                if refusal_ is not None:
                    return refusal_, method == "HEAD"
        try:
            return await handler(request), method == "HEAD"
        except HttpError as error:
            return HttpResponse.text(f"{error}\n", error.status), method == "HEAD"
        except Exception:
            log.exception("handler failed", extra={"path": request.path})
            return HttpResponse.text("internal error\n", 500), False

    def _route(self, path: str) -> Handler | None:
        if path in self._routes:
            return self._routes[path]
        prefixes = [p for p in self._routes if p.endswith("/") and path.startswith(p)]
        return self._routes[max(prefixes, key=len)] if prefixes else None
