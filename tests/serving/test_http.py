"""The monitoring HTTP server: routing, guards, errors."""

from __future__ import annotations

import asyncio

from xds.serving.http import HttpRequest, HttpResponse, HttpServer

from .conftest import fetch


async def test_routes_guards_and_errors() -> None:
    async def hello(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"who": request.arg("who", "nobody")})

    async def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("secret detail")

    def deny(request: HttpRequest) -> HttpResponse | None:
        return HttpResponse.text("no\n", 403) if request.arg("deny") else None

    server = HttpServer({"/hello": hello, "/debug/": hello, "/boom": boom}, guards={"/debug": deny})
    port = await server.start("127.0.0.1", 0)
    try:
        assert await fetch(port, b"GET /hello?who=me HTTP/1.1\r\n\r\n") == (200, b'{"who": "me"}\n')
        assert (await fetch(port, b"GET /debug/x HTTP/1.1\r\n\r\n"))[0] == 200
        assert (await fetch(port, b"GET /debug/x?deny=1 HTTP/1.1\r\n\r\n"))[0] == 403
        assert (await fetch(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == 404
        status, body = await fetch(port, b"GET /boom HTTP/1.1\r\n\r\n")
        assert status == 500 and b"secret" not in body
        assert (await fetch(port, b"garbage\r\n\r\n"))[0] == 400
    finally:
        await server.close()


async def raw_head(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


async def test_methods_lengths_and_timeouts_are_bounded() -> None:
    async def echo(request: HttpRequest) -> HttpResponse:
        return HttpResponse.text(f"{request.method} {len(request.body)}\n")

    server = HttpServer(
        {"/read": echo, "/write": echo},
        methods={"/write": frozenset({"GET", "PUT"})},
        read_timeout=0.3,
    )
    port = await server.start("127.0.0.1", 0)
    try:
        # Only the methods a route takes; the answer says which.
        refused = await raw_head(port, b"POST /read HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in refused
        assert await fetch(port, b"PUT /write HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") == (
            200,
            b"PUT 3\n",
        )
        head = await raw_head(port, b"HEAD /read HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")  # no body
        # A bad or negative Content-Length is a 400, not a traceback.
        for length in (b"-5", b"abc", b"1e3"):
            status, body = await fetch(
                port, b"PUT /write HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
            )
            assert status == 400 and b"Content-Length" in body
        assert (await fetch(port, b"PUT /write HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n"))[
            0
        ] == 413
        # A body that never comes does not hold the connection.
        started = asyncio.get_running_loop().time()
        status, _ = await fetch(port, b"PUT /write HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        assert status == 408 and asyncio.get_running_loop().time() - started < 2
    finally:
        await server.close()


async def test_connections_are_capped() -> None:
    async def slow(request: HttpRequest) -> HttpResponse:
        return HttpResponse.text("ok\n")

    server = HttpServer({"/x": slow}, max_connections=2, read_timeout=5)
    port = await server.start("127.0.0.1", 0)
    held = []
    try:
        for _ in range(2):  # two connections that say nothing
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.1)
        status, body = await fetch(port, b"GET /x HTTP/1.1\r\n\r\n")
        assert status == 503 and b"too many connections" in body
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.1)
        assert (await fetch(port, b"GET /x HTTP/1.1\r\n\r\n"))[0] == 200
    finally:
        await server.close()
