"""Benchmark: the ztunnel translation of a large mesh (not a test; prints figures).

    .venv/bin/python -m loadtest.bench_ztunnel [--pods 10000] [--services 1000]

The mesh comes from ``loadtest.meshgen`` (default: performance.md's T6 shape,
10k pods / 1k services / 40 waypoints / 500 nodes, mesh-wide STRICT mTLS,
200 selector policies). Figures, each printed with its target:

* full state: ``ZtunnelTranslator.translate(mesh, None)`` — every Workload,
  Service and Authorization built and serialized once (``Resource``), plus
  the Delta wire form of every resource (what serving splices into responses);
* bytes per Workload (the serialized ``Address``), per Service, and per
  ``Resource`` entry of a DeltaDiscoveryResponse;
* memory held for the state: tracemalloc's count of what the translator and
  its output keep alive after a full build (RSS growth shown alongside);
* one incremental pod change: a readiness flip of one pod through
  ``MeshStore.apply`` and ``translate(changes)``, over many different pods.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

from loadtest import meshgen
from xds import type_urls
from xds.model import MeshStore
from xds.model.core import Pod
from xds.proto.istio.workload import workload_pb2 as wl
from xds.resources import Resource, Update
from xds.translate.ztunnel import ZtunnelTranslator

TARGET_FULL_SECONDS: Final = 1.0
TARGET_WORKLOAD_BYTES: Final = 300
TARGET_STATE_MB: Final = 50.0
TARGET_POD_CHANGE_MS: Final = 5.0
"""Not in the brief's list; a budget that leaves T7's 250 ms mostly to debounce and push."""


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _resources(updates: list[Update], type_url: str) -> list[Resource]:
    return [r for u in updates if u.type_url == type_url for r in u.upserts]


def _timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _wire_form_seconds(updates: list[Update]) -> float:
    """Time to produce the Delta wire entry of every resource (cached on the Resource)."""
    resources = [r for u in updates for r in u.upserts]
    start = time.perf_counter()
    for resource in resources:
        resource.delta_field()
    return time.perf_counter() - start


def _row(label: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"  {label:<44} {value:>14}  {target:<12} {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = meshgen.MeshSpec()
    parser.add_argument("--pods", type=int, default=defaults.pods)
    parser.add_argument("--services", type=int, default=defaults.services)
    parser.add_argument("--rounds", type=int, default=5, help="full builds to time")
    parser.add_argument("--changes", type=int, default=500, help="pod changes to time")
    args = parser.parse_args(argv)
    spec = replace(defaults, pods=args.pods, services=args.services)

    print(f"mesh: {spec}")
    generate_seconds, generated = _timed(lambda: meshgen.objects(spec))
    objects = generated if isinstance(generated, list) else []
    store = MeshStore()
    apply_seconds, _ = _timed(lambda: store.apply(objects))
    print(
        f"  generated and parsed {len(objects)} objects in {generate_seconds:.2f} s; "
        f"MeshStore.apply {apply_seconds * 1000:.0f} ms\n"
    )

    # --- full state: build + serialize, then the Delta wire form ----------------
    build_times, wire_times = [], []
    updates: list[Update] = []
    for _ in range(args.rounds):
        gc.collect()
        build_seconds, result = _timed(lambda: ZtunnelTranslator().translate(store, None))
        updates = result if isinstance(result, list) else []
        wire_seconds = _wire_form_seconds(updates)
        build_times.append(build_seconds)
        wire_times.append(wire_seconds)
    addresses = _resources(updates, type_urls.ADDRESS)
    authorizations = _resources(updates, type_urls.AUTHORIZATION)
    workloads = [r for r in addresses if wl.Address.FromString(r.body).HasField("workload")]
    services = [r for r in addresses if r not in workloads]
    full = statistics.median(b + w for b, w in zip(build_times, wire_times, strict=True))
    print(
        f"full state ({len(workloads)} workloads, {len(services)} services, "
        f"{len(authorizations)} authorizations), median of {args.rounds}:"
    )
    _row("build + serialize (translate)", f"{statistics.median(build_times) * 1000:.0f} ms")
    _row("Delta wire form of every resource", f"{statistics.median(wire_times) * 1000:.0f} ms")
    _row(
        "full state, total",
        f"{full * 1000:.0f} ms",
        f"<= {TARGET_FULL_SECONDS:.0f} s",
        full <= TARGET_FULL_SECONDS,
    )

    # --- sizes -------------------------------------------------------------------
    workload_bytes = statistics.mean(len(r.body) for r in workloads)
    everything = addresses + authorizations
    print("\nsizes:")
    _row(
        "per Workload (serialized Address)",
        f"{workload_bytes:.0f} B",
        f"<= {TARGET_WORKLOAD_BYTES} B",
        workload_bytes <= TARGET_WORKLOAD_BYTES,
    )
    _row("  largest Workload", f"{max(len(r.body) for r in workloads)} B")
    _row(
        "per Service (serialized Address)",
        f"{statistics.mean(len(r.body) for r in services):.0f} B",
    )
    _row(
        "per Resource on the wire (Delta entry)",
        f"{statistics.mean(len(r.delta_field()) for r in everything):.0f} B",
    )
    _row(
        "full Address response (all Delta entries)",
        f"{sum(len(r.delta_field()) for r in addresses) / 1e6:.2f} MB",
    )

    # --- memory ------------------------------------------------------------------
    del updates, addresses, authorizations, workloads, services, everything
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    translator = ZtunnelTranslator()
    held = translator.translate(store, None)
    for update in held:
        for resource in update.upserts:
            resource.delta_field()  # serving keeps the wire form too
    gc.collect()
    state_bytes = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    print("\nmemory held for the state (translator memo + resources with wire form):")
    _row(
        "tracemalloc",
        f"{state_bytes / 2**20:.1f} MB",
        f"<= {TARGET_STATE_MB:.0f} MB",
        state_bytes / 2**20 <= TARGET_STATE_MB,
    )
    _row("RSS growth (includes tracemalloc's own cost)", f"{rss_growth / 2**20:.1f} MB")

    # --- one pod change ------------------------------------------------------------
    rng = random.Random(3)
    pods = rng.sample(sorted(store.objects(Pod), key=lambda p: p.key), args.changes)
    change_times = []
    upserts_per_change = set()
    for pod in pods:
        start = time.perf_counter()
        changes = store.apply([replace(pod, ready=not pod.ready)])
        result = translator.translate(store, changes)
        change_times.append(time.perf_counter() - start)
        upserts_per_change.add(sum(len(u.upserts) + len(u.removals) for u in result))
    change_times.sort()
    median_ms = statistics.median(change_times) * 1000
    p99_ms = change_times[int(len(change_times) * 0.99) - 1] * 1000
    print(f"\none pod change (readiness flip, MeshStore.apply + translate), {args.changes} pods:")
    _row(
        "median",
        f"{median_ms:.2f} ms",
        f"<= {TARGET_POD_CHANGE_MS:.0f} ms",
        median_ms <= TARGET_POD_CHANGE_MS,
    )
    _row("p99", f"{p99_ms:.2f} ms")
    _row(
        "resources sent per change",
        ", ".join(map(str, sorted(upserts_per_change))),
        "1",
        upserts_per_change == {1},
    )


if __name__ == "__main__":
    main()
