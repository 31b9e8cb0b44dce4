"""Real processes on loopback for the waypoint end-to-end tests.

The layout (waypoint.md §2 and Appendix B, with our server instead of istiod)::

    test --plain HTTP/TCP--> client "ztunnel" (Envoy: one listener per
        (destination, SPIFFE identity); certificates from our CA)
      --HBONE to <waypoint address>:15008--> waypoint Envoy (bootstrap from
        ``xds bootstrap waypoint``; config, certificate and root over ADS on our
        TLS port)
      --HBONE to <pod IP>:15008--> destination "ztunnel" (Envoy)
      --plain--> backend (asyncio server on <pod IP>:<port>)

The control plane (an in-process ``ControlPlane``) and the backends share one
asyncio loop in a background thread (``LoopThread``), so the tests themselves
are plain blocking code: 500 sequential requests would otherwise starve the
loop that serves them.

Port 15008 cannot be moved in served config: the waypoint listens on
``0.0.0.0:15008`` and dials ``<pod IP>:15008``. Envoy binds with SO_REUSEPORT,
so the destination ztunnel's ``<pod IP>:15008`` sockets and the waypoint's
wildcard socket coexist (the kernel prefers the exact address), but so would
a second waypoint from a concurrent run, silently sharing connections with
ours. ``exclusive_hbone_port`` therefore serializes runs on this machine
(lock file) and refuses to start beside anybody else's 15008 listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format

from loadtest.hbone_lock import HBONE_PORT, exclusive_hbone_port  # noqa: F401 (re-exported)
from tests.conftest import running_control_plane
from tests.helpers import free_port
from tests.security.support import ISTIOD_NAME, ec_key, leaf_uris, make_csr
from tests.translate.waypoint.live import RunningEnvoy, envoy_from_file
from xds import type_urls
from xds.plane.app import ControlPlane
from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc
from xds.resources import decode
from xds.security.identity import Identity
from xds.security.plane import SecurityOptions
from xds.security.tokens import TokenGrant, add_grant
from xds.serving.ads import Connection, ConnectionRegistry
from xds.serving.delta import DeltaWatch
from xds.serving.sotw import SotwWatch
from xds.serving.store import ConfigStore

TRUST_DOMAIN = "cluster.local"

T = TypeVar("T")


# -- an asyncio loop in a thread -----------------------------------------------------


class LoopThread:
    """Runs an event loop in a daemon thread; ``run`` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="e2e-loop", daemon=True)
        self._thread.start()
        self.stack = contextlib.AsyncExitStack()

    def run(self, coroutine: Awaitable[T], timeout: float = 60.0) -> T:
        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def call(self, function: Callable[[], T], timeout: float = 10.0) -> T:
        """``function()`` on the loop thread (to read state the loop mutates)."""

        async def wrapped() -> T:
            return function()

        return self.run(wrapped(), timeout)

    def close(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the control plane ------------------------------------------------------------------


@dataclass
class SecurePlane:
    plane: ControlPlane
    tokens: dict[str, str]
    """A bearer token per account name."""
    ca_root: Path
    waypoint_token: Path
    """The token of the account named "waypoint", as a file (for the bootstrap)."""


def start_secure_plane(
    loop: LoopThread, config: Path, directory: Path, accounts: Mapping[str, str]
) -> SecurePlane:
    """Our ControlPlane serving ``config`` in ``loop`` (stopped with it), with its TLS
    port, a CA under ``directory``, and a token per account (name -> "namespace/sa")."""
    ca_dir, tokens_file = directory / "ca", directory / "tokens"
    tokens = {
        name: add_grant(tokens_file, TokenGrant(Identity.from_account(account)))
        for name, account in accounts.items()
    }
    token_file = directory / "waypoint.token"
    token_file.write_text(tokens["waypoint"] + "\n")
    plane = loop.run(
        loop.stack.enter_async_context(
            running_control_plane(
                config,
                secure_port=-1,
                security=SecurityOptions(ca_dir=ca_dir, tokens_file=tokens_file),
            )
        )
    )
    return SecurePlane(plane, tokens, ca_dir / "root-cert.pem", token_file)


# -- backends (asyncio, on the loop thread) --------------------------------------------

IDLE_SECONDS = 30.0
MAX_REQUESTS_PER_CONNECTION = 100_000


@dataclass
class BackendLog:
    """What one HTTP backend saw: request count by path prefix, for assertions."""

    requests: int = 0
    methods: dict[str, int] = field(default_factory=dict)


async def serve_http(name: str, host: str, port: int, log: BackendLog) -> asyncio.Server:
    """HTTP/1.1 with keep-alive; answers every request with JSON naming ``name``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, version = request_line.split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in header_lines if line)
                }
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                log.requests += 1
                log.methods[method] = log.methods.get(method, 0) + 1
                body = json.dumps(
                    {"backend": name, "method": method, "path": path, "headers": headers}
                ).encode()
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n".encode()
                    + (b"connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def serve_echo(host: str, port: int) -> asyncio.Server:
    """Echoes until the client half-closes, then closes (FIN) itself."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await asyncio.wait_for(reader.read(65536), IDLE_SECONDS):
                writer.write(data)
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def serve_write_then_close(host: str, port: int, payload: bytes) -> asyncio.Server:
    """A server-first protocol that writes ``payload`` and closes at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def close_server(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 5)


# -- certificates from our CA, as a ztunnel gets them ---------------------------------


@dataclass(frozen=True)
class IssuedCertificate:
    spiffe_id: str
    """The URI SAN the CA put in the leaf (from the token, not from the CSR)."""
    chain: Path
    key: Path


def issue_certificate(
    secure_port: int, root_pem: bytes, token: str, directory: Path, name: str, spiffe_id: str
) -> IssuedCertificate:
    """CreateCertificate on the TLS port, authenticated as the identity itself."""
    key = ec_key()
    channel = grpc.secure_channel(
        f"127.0.0.1:{secure_port}",
        grpc.ssl_channel_credentials(root_pem),
        options=[("grpc.ssl_target_name_override", ISTIOD_NAME)],
    )
    with channel:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
        response = stub.CreateCertificate(
            ca_pb2.IstioCertificateRequest(csr=make_csr(spiffe_id, key), validity_duration=3600),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=20,
        )
    directory.mkdir(parents=True, exist_ok=True)
    chain = directory / f"{name}.pem"
    # cert_chain is [leaf, *intermediates, root]; a TLS peer sends all but the root.
    chain.write_text(
        "".join(pem if pem.endswith("\n") else pem + "\n" for pem in list(response.cert_chain)[:-1])
    )
    key_path = directory / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    [issued] = leaf_uris(response.cert_chain[0])
    return IssuedCertificate(issued, chain, key_path)


# -- the waypoint, from `xds bootstrap waypoint` ---------------------------------------


def write_waypoint_bootstrap(
    path: Path,
    *,
    namespace: str,
    name: str,
    pod_name: str,
    secure_port: int,
    token_file: Path,
    ca_root: Path,
    pod_ip: str,
    admin_port: int,
    readiness_port: int,
    delta: bool,
) -> None:
    """Run the CLI exactly as an operator would (a separate process)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "xds",
            "bootstrap",
            "waypoint",
            "--namespace",
            namespace,
            "--name",
            name,
            "--xds-address",
            f"127.0.0.1:{secure_port}",
            "--pod-ip",
            pod_ip,
            "--pod-name",
            pod_name,
            "--token-file",
            str(token_file),
            "--ca-root",
            str(ca_root),
            "--admin-port",
            str(admin_port),
            "--readiness-port",
            str(readiness_port),
            "--prometheus-port",
            "0",
            "--delta" if delta else "--sotw",
            "--output",
            str(path),
        ],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )


@contextlib.contextmanager
def waypoint_envoy(
    secure: SecurePlane,
    directory: Path,
    *,
    namespace: str,
    pod_name: str,
    pod_ip: str,
    delta: bool,
    name: str = "waypoint",
) -> Iterator[RunningEnvoy]:
    """A stock Envoy started from ``xds bootstrap waypoint`` output for Gateway
    ``namespace/name``, connected to ``secure``'s TLS port; yielded once its readiness
    port answers as Kubernetes would probe it."""
    path = directory / f"{pod_name}.yaml"
    readiness = free_port()
    write_waypoint_bootstrap(
        path,
        namespace=namespace,
        name=name,
        pod_name=pod_name,
        secure_port=secure.plane.ports.secure,
        token_file=secure.waypoint_token,
        ca_root=secure.ca_root,
        pod_ip=pod_ip,
        admin_port=free_port(),
        readiness_port=readiness,
        delta=delta,
    )
    with envoy_from_file(pod_name, path, directory) as envoy:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{readiness}/healthz/ready"), 20, "/healthz/ready"
        )
        yield envoy


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def config_dump(envoy: RunningEnvoy) -> dict[str, Any]:
    with urllib.request.urlopen(f"{envoy.admin}/config_dump?include_eds", timeout=10) as reply:
        dump: dict[str, Any] = json.load(reply)
    return dump


def certificate_uris(envoy: RunningEnvoy) -> list[str]:
    """URI SANs of the certificates Envoy holds (admin ``/certs``), without the CAs'."""
    with urllib.request.urlopen(f"{envoy.admin}/certs", timeout=10) as reply:
        certs = json.load(reply)
    return sorted(
        {
            san["uri"]
            for entry in certs.get("certificates", [])
            for cert in entry.get("cert_chain", [])
            for san in cert.get("subject_alt_names", [])
            if "uri" in san
        }
    )


def dump_section(dump: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The ``*ConfigDump`` of one kind (``Clusters``, ``Listeners``, ...)."""
    for config in dump["configs"]:
        if config["@type"].endswith(f".{kind}ConfigDump"):
            section: dict[str, Any] = config
            return section
    return {}


def find_keys(value: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in nested JSON."""
    found = []
    if isinstance(value, dict):
        for k, item in value.items():
            if k == key:
                found.append(item)
            found += find_keys(item, key)
    elif isinstance(value, list):
        for item in value:
            found += find_keys(item, key)
    return found


def envoy_resources(dump: Mapping[str, Any], type_url: str) -> dict[str, dict[str, Any]]:
    """The active dynamic listeners or clusters as Envoy dumps them, by name."""
    if type_url == type_urls.LISTENER:
        return {
            entry["name"]: entry["active_state"]["listener"]
            for entry in dump_section(dump, "Listeners").get("dynamic_listeners", [])
            if "active_state" in entry
        }
    if type_url == type_urls.CLUSTER:
        return {
            c["cluster"]["name"]: c["cluster"]
            for c in dump_section(dump, "Clusters").get("dynamic_active_clusters", [])
        }
    raise ValueError(f"no content comparison for {type_url}")


def normalized(type_url: str, value: Mapping[str, Any] | bytes) -> dict[str, Any]:
    """One resource (Envoy's JSON, or our serialized body) through the same
    protobuf parse and print, so that equal content compares equal."""
    message = decode(type_url, b"")
    if isinstance(value, bytes):
        message.ParseFromString(value)
    else:
        value = {k: v for k, v in value.items() if k != "@type"}
        json_format.ParseDict(value, message)
    printed: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return printed


@dataclass(frozen=True)
class EnvoyView:
    """What Envoy says it holds: dynamic resource name -> version, per xDS type.

    Envoy's config dump has no versions for EDS assignments (they show as ""),
    and it lists the inline assignments of STATIC clusters beside them; only the
    assignments of EDS clusters are kept here."""

    versions: dict[str, dict[str, str]]
    empty_assignments: list[str]  # EDS clusters without a single endpoint
    type_versions: dict[str, str]  # SotW: version_info of the last accepted response
    warming: list[str]
    errors: list[Any]


def envoy_view(dump: Mapping[str, Any]) -> EnvoyView:
    clusters = dump_section(dump, "Clusters")
    listeners = dump_section(dump, "Listeners")
    endpoints = dump_section(dump, "Endpoints")
    secrets = dump_section(dump, "Secrets")
    active = clusters.get("dynamic_active_clusters", [])
    eds = {c["cluster"]["name"] for c in active if "eds_cluster_config" in c["cluster"]}
    versions = {
        type_urls.CLUSTER: {c["cluster"]["name"]: c.get("version_info", "") for c in active},
        type_urls.LISTENER: {
            entry["name"]: entry["active_state"].get("version_info", "")
            for entry in listeners.get("dynamic_listeners", [])
            if "active_state" in entry
        },
        type_urls.ENDPOINT: {
            e["endpoint_config"]["cluster_name"]: e.get("version_info", "")
            for e in endpoints.get("dynamic_endpoint_configs", [])
            if e["endpoint_config"]["cluster_name"] in eds
        },
        type_urls.SECRET: {
            s["name"]: s.get("version_info", "") for s in secrets.get("dynamic_active_secrets", [])
        },
    }
    warming = (
        [c["cluster"]["name"] for c in clusters.get("dynamic_warming_clusters", [])]
        + [
            entry["name"]
            for entry in listeners.get("dynamic_listeners", [])
            if "warming_state" in entry
        ]
        + [s["name"] for s in secrets.get("dynamic_warming_secrets", [])]
    )
    empty = [
        e["endpoint_config"]["cluster_name"]
        for e in endpoints.get("dynamic_endpoint_configs", [])
        if e["endpoint_config"]["cluster_name"] in eds
        and not find_keys(e["endpoint_config"], "lb_endpoints")
    ]
    return EnvoyView(
        versions,
        empty,
        {
            type_urls.CLUSTER: clusters.get("version_info", ""),
            type_urls.LISTENER: listeners.get("version_info", ""),
        },
        warming,
        find_keys(dump, "error_state"),
    )


@dataclass(frozen=True)
class ServerView:
    """What our server tracked for one stream: per type, state, counts and versions."""

    delta: bool
    states: dict[str, str]
    nacks: dict[str, int]
    acks: dict[str, int]
    versions: dict[str, dict[str, str]]  # Delta: what the client holds; SotW: last sent
    acked_version_info: dict[str, str]  # SotW only
    bodies: dict[str, dict[str, bytes]]  # what the stream's scope holds now, by type and name


def server_view(connection: Connection, store: ConfigStore) -> ServerView:
    """Copy a stream's delivery state (call on the loop thread)."""
    versions: dict[str, dict[str, str]] = {}
    acked: dict[str, str] = {}
    for type_url, watch in connection.session.watches.items():
        if isinstance(watch, DeltaWatch):
            versions[type_url] = dict(watch.client_versions)
        elif isinstance(watch, SotwWatch):
            versions[type_url] = dict(watch.sent_versions)
            acked[type_url] = watch.acked_version_info
    statuses = connection.statuses
    bodies = {}
    for type_url in statuses:
        scope = connection.binding.type_scopes.get(type_url, connection.scope)
        bodies[type_url] = {
            name: resource.body for name, resource in store.view(scope).resources(type_url).items()
        }
    return ServerView(
        connection.delta,
        {t: s.state for t, s in statuses.items()},
        {t: s.nacks for t, s in statuses.items()},
        {t: s.acks for t, s in statuses.items()},
        versions,
        acked,
        bodies,
    )


def waypoint_connections(connections: ConnectionRegistry, pod_name: str) -> list[Connection]:
    return [c for c in connections if c.node.pod_name == pod_name]
