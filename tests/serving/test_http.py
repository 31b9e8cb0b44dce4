"""The monitoring HTTP server: routing, guards, errors."""

from __future__ import annotations

import asyncio

from xds.serving.http import HttpRequest, HttpResponse, HttpServer


async def fetch(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_routes_guards_and_errors() -> None:
    async def hello(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"who": request.arg("who", "nobody")})

    async def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("secret detail")

    def deny(request: HttpRequest) -> HttpResponse | None:
        return HttpResponse.text("no\n", 403) if request.arg("deny") else None

    server = HttpServer({"/hello": hello, "/debug/": hello, "/boom": boom},
                        guards={"/debug": deny})
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
