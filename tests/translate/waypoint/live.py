"""Run generated waypoint snapshots in real Envoys, with ztunnels played by Envoys too.

The layout follows waypoint.md Appendix B, on loopback:

    test --HTTP/TCP--> client "ztunnel" (Envoy: tcp_proxy with tunneling_config,
        mTLS client certificate, HTTP/2 CONNECT to <target>)
      --HBONE--> waypoint (Envoy: the translator's snapshot, static)
      --HBONE--> destination "ztunnel" (Envoy: CONNECT termination, ORIGINAL_DST
        on the :authority) --plaintext--> backend (Python HTTP or TCP echo)

Ports are picked free at start-up; the waypoint's fixed ports (15008, and
15008 as the tunnel port of connect_originate) are rewritten to them, which
is the only change made to the generated resources besides envoy_static's.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

from tests.translate.waypoint.envoy_static import ENVOY, Certificates

_TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
_UPSTREAM_TLS_CONTEXT_TYPE = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
)
_DOWNSTREAM_TLS_CONTEXT_TYPE = (
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)
_HTTP_CONNECTION_MANAGER_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

TLS13 = {"tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_3"}


@dataclass
class RunningEnvoy:
    name: str
    process: subprocess.Popen[str]
    admin: str
    log: Path

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.admin}/stats?format=json", timeout=5) as reply:
            data = json.load(reply)
        return {item["name"]: item.get("value", 0) for item in data["stats"] if "name" in item}


@contextmanager
def envoy(name: str, config: dict[str, Any], directory: Path) -> Iterator[RunningEnvoy]:
    """Start Envoy with ``config`` (admin port chosen by Envoy) and wait until it is ready."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        **config,
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    with envoy_from_file(name, path, directory) as running:
        yield running


@contextmanager
def envoy_from_file(name: str, config: Path, directory: Path) -> Iterator[RunningEnvoy]:
    """Start Envoy on a config file as it is (JSON or YAML) and wait until it is ready."""
    directory.mkdir(parents=True, exist_ok=True)
    admin_file = directory / f"{name}.admin"
    admin_file.unlink(missing_ok=True)
    log = directory / f"{name}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                str(ENVOY),
                "-c",
                str(config),
                "--disable-hot-restart",
                # Access logs reach their files at once, not after Envoy's default 10 s.
                "--file-flush-interval-msec",
                "100",
                # ENVOY_LOG_LEVEL=debug when a live test needs explaining.
                "--log-level",
                os.environ.get("ENVOY_LOG_LEVEL", "info"),
                "--admin-address-path",
                str(admin_file),
                "--base-id-path",
                str(directory / name),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        admin = _wait_ready(process, admin_file, log)
        yield RunningEnvoy(name, process, admin, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[str], admin_file: Path, log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"envoy exited with {process.returncode}:\n{tail}")
        if admin_file.exists() and admin_file.read_text().strip():
            admin = "http://" + admin_file.read_text().strip()
            try:
                with urllib.request.urlopen(f"{admin}/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return admin
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.05)
    raise RuntimeError(f"envoy not ready:\n{log.read_text()[-3000:]}")


def _tls_context(certs: Certificates, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "tls_params": TLS13,
        "alpn_protocols": ["h2"],
        "tls_certificates": [
            {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)}}
        ],
        "validation_context": {"trusted_ca": {"filename": str(certs.ca)}},
    }


def _h2_connect_options() -> dict[str, Any]:
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {"allow_connect": True}},
        }
    }


@dataclass(frozen=True)
class Tunnel:
    """One client-ztunnel listener: plaintext in, HBONE to ``target`` as ``identity``."""

    name: str
    target: str
    identity: str
    port: int


def client_ztunnel(
    tunnels: list[Tunnel],
    waypoint_port: int,
    certs: Certificates,
    identities: dict[str, tuple[Path, Path]],
    waypoint_address: str = "127.0.0.1",
) -> dict[str, Any]:
    listeners = [
        {
            "name": tunnel.name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": tunnel.port}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.tcp_proxy",
                            "typed_config": {
                                "@type": _TCP_PROXY_TYPE,
                                "stat_prefix": tunnel.name,
                                "cluster": f"hbone-{tunnel.identity}",
                                "tunneling_config": {"hostname": tunnel.target},
                            },
                        }
                    ]
                }
            ],
        }
        for tunnel in tunnels
    ]
    clusters = [
        {
            "name": f"hbone-{identity}",
            "type": "STATIC",
            "connect_timeout": "2s",
            "load_assignment": {
                "cluster_name": f"hbone-{identity}",
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {
                                            "address": waypoint_address,
                                            "port_value": waypoint_port,
                                        }
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
            "typed_extension_protocol_options": _h2_connect_options(),
            "transport_socket": {
                "name": "tls",
                "typed_config": {
                    "@type": _UPSTREAM_TLS_CONTEXT_TYPE,
                    "common_tls_context": _tls_context(certs, *identities[identity]),
                },
            },
        }
        for identity in sorted({tunnel.identity for tunnel in tunnels})
    ]
    return {"static_resources": {"listeners": listeners, "clusters": clusters}}


def destination_ztunnel(
    address: str, port: int, certs: Certificates, cert: Path, key: Path
) -> dict[str, Any]:
    """Terminates CONNECT and connects to the :authority, as a destination ztunnel does."""
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "hbone",
                    "address": {"socket_address": {"address": address, "port_value": port}},
                    "filter_chains": [
                        {
                            "transport_socket": {
                                "name": "tls",
                                "typed_config": {
                                    "@type": _DOWNSTREAM_TLS_CONTEXT_TYPE,
                                    "require_client_certificate": True,
                                    "common_tls_context": _tls_context(certs, cert, key),
                                },
                            },
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": _HTTP_CONNECTION_MANAGER_TYPE,
                                        "stat_prefix": "hbone",
                                        "upgrade_configs": [{"upgrade_type": "CONNECT"}],
                                        "http2_protocol_options": {"allow_connect": True},
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"connect_matcher": {}},
                                                            "route": {
                                                                "cluster": "app",
                                                                "upgrade_configs": [
                                                                    {
                                                                        "upgrade_type": "CONNECT",
                                                                        "connect_config": {},
                                                                    }
                                                                ],
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {"@type": _ROUTER_TYPE},
                                            }
                                        ],
                                    },
                                }
                            ],
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "app",
                    "type": "ORIGINAL_DST",
                    "lb_policy": "CLUSTER_PROVIDED",
                    "connect_timeout": "2s",
                    "original_dst_lb_config": {
                        "use_http_header": True,
                        "http_header_name": ":authority",
                    },
                }
            ],
        }
    }


def retarget_hbone_ports(
    config: dict[str, Any], terminate_port: int, originate_port: int
) -> dict[str, Any]:
    """Move connect_terminate off 0.0.0.0:15008 and the tunnel port off 15008."""
    for listener in config["static_resources"]["listeners"]:
        if listener["name"] == "connect_terminate":
            listener["address"] = {
                "socket_address": {"address": "127.0.0.1", "port_value": terminate_port}
            }
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "connect_originate":
            cluster["original_dst_lb_config"]["upstream_port_override"] = originate_port
    return config


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1)  # holds its upstream connection: for connection limits
        address = self.server.server_address
        backend = address[0] if isinstance(address, tuple) else str(address)
        reply: dict[str, object] = {
            "backend": backend,
            "path": self.path,
            "headers": dict(self.headers),
        }
        if isinstance(self.connection, ssl.SSLSocket):
            # Who the TLS client proved to be (mutual TLS backends): its URI SANs.
            peer = self.connection.getpeercert() or {}
            sans = peer.get("subjectAltName", ())
            reply["client_uris"] = [value for kind, value in sans if kind == "URI"]
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_GET  # a preflight that reaches the backend says so in its body

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_backend(
    address: str, port: int, *, tls: Certificates | None = None, client_ca: Path | None = None
) -> Iterator[None]:
    """The echo HTTP server; HTTPS with ``tls`` (an external API for TLS origination),
    demanding a client certificate signed by ``client_ca`` when given (mutual TLS)."""
    server = ThreadingHTTPServer((address, port), _Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _tcp_server(
    address: str, port: int, handle: Callable[[socket.socket], None], *, concurrent: bool = False
) -> Iterator[None]:
    """Accept connections on ``address:port`` until the block ends; ``handle`` serves
    each one (in a thread of its own when ``concurrent``)."""
    listener = socket.create_server((address, port))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if concurrent:
                threading.Thread(target=handle, args=(connection,), daemon=True).start()
            else:
                handle(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        listener.close()


def tcp_echo(address: str, port: int) -> AbstractContextManager[None]:
    def serve(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data)

    return _tcp_server(address, port, serve, concurrent=True)


def tcp_banner(
    address: str, port: int, banner: bytes, *, linger: bool = False
) -> AbstractContextManager[None]:
    """A server-first TCP server that writes ``banner``, then closes at once, or
    (``linger``) only once the client sends a line or closes."""

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.sendall(banner)
            if linger:
                connection.settimeout(10)
                with suppress(OSError):
                    connection.recv(100)

    return _tcp_server(address, port, serve)


def tls_echo(
    address: str, port: int, identity: Certificates, name: bytes
) -> AbstractContextManager[None]:
    """A TLS server (its own certificate): answers each line with ``name`` and the line,
    so a client knows which backend its handshake reached."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(identity.cert, identity.key)

    def serve(connection: socket.socket) -> None:
        connection.settimeout(10)
        with suppress(OSError), context.wrap_socket(connection, server_side=True) as tls:
            line = tls.recv(100)
            tls.sendall(name + b" " + line)
            # The client closes first: closing with its bytes unread would reset the
            # connection before it has read the answer.
            while tls.recv(100):
                pass

    return _tcp_server(address, port, serve)


class Authorizer(external_auth_pb2_grpc.AuthorizationServicer):
    """Allows requests carrying ``x-ext-authz: allow``; denies the rest with a 403 of its
    own (a header and a body the client can tell apart from Envoy's RBAC denial)."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    def Check(self, request: Any, context: Any) -> Any:
        http = request.attributes.request.http
        self.checked.append(http.path)
        if http.headers.get("x-ext-authz") == "allow":
            return external_auth_pb2.CheckResponse(
                status=status_pb2.Status(code=0), ok_response=external_auth_pb2.OkHttpResponse()
            )
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=7),
            denied_response=external_auth_pb2.DeniedHttpResponse(
                status=http_status_pb2.HttpStatus(code=403),  # type: ignore[arg-type]
                headers=[
                    base_pb2.HeaderValueOption(
                        header=base_pb2.HeaderValue(key="x-ext-authz-check", value="denied")
                    )
                ],
                body="denied by the test authorizer",
            ),
        )


@contextmanager
def ext_authz_server(address: str, port: int) -> Iterator[Authorizer]:
    """A gRPC external authorizer (envoy.service.auth.v3) listening on ``address:port``."""
    authorizer = Authorizer()
    server = grpc.server(ThreadPoolExecutor(4))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(authorizer, server)
    server.add_insecure_port(f"{address}:{port}")
    server.start()
    try:
        yield authorizer
    finally:
        server.stop(grace=None)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwtIssuer:
    """An RS256 token issuer: its JWKS (for a RequestAuthentication) and signed tokens."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> str:
        numbers = self._key.public_key().public_numbers()

        def encode(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "test"}
        return json.dumps({"keys": [{**key, "n": encode(numbers.n), "e": encode(numbers.e)}]})

    def token(self, subject: str, *, issuer: str | None = None, lifetime: float = 600) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": "test"}
        claims = {"iss": issuer or self.issuer, "sub": subject, "iat": now, "exp": now + lifetime}
        signed = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims)).encode()
        signature = self._key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return f"{signed.decode()}.{_b64url(signature)}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def get(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One plain HTTP/1.1 GET (redirects are not followed)."""
    return request(port, "GET", path, headers)


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        reply = connection.getresponse()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        connection.close()
