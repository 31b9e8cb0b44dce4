"""From what a run measured to named figures, each with its target where one applies.

Latencies of changes are from the moment the changed file was renamed into
place (or the floor was told) to the moment a proxy had the change and had
queued its ACK:

* ``single_change_*``: pooled over every (proxy, change) pair of the single
  changes; ``single_change_last_max`` is the slowest change's last proxy;
* ``churn_*`` and ``route_change_*``: per change, the time until the *last*
  affected proxy ACKed it; percentiles over changes;
* ``*_floor_ratio``: ours divided by the floor's same figure in the same run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol

from loadtest import stats
from loadtest.csr import CsrResult
from loadtest.phases import Changes
from loadtest.report import Better, Report
from loadtest.run import Exercise, RunResult
from loadtest.soak import SoakResult

_MB = 1024 * 1024


def build(outcome: RunResult, report: Report) -> Report:
    scenario = outcome.scenario
    server, floor = outcome.server, outcome.floor

    def add(
        name: str, value: float, unit: str, label: str, *, better: Better = Better.LOWER
    ) -> None:
        report.add(name, value, unit, scenario.target(name), better=better, label=label)

    _config(outcome, report)
    _sync(add, server, floor)
    _server(add, server, outcome)
    if server.singles is not None:
        _singles(add, server.singles, floor.singles if floor else None, floor)
        _cpu_per_change(add, server, "server")
        if floor is not None and floor.singles is not None:
            _cpu_per_change(add, floor, "floor")
    if server.routes is not None:
        per_change = [o.last for o in server.routes.outcomes if o.converged]
        add(
            "route_change_p50",
            _ms(stats.percentile(per_change, 0.5)),
            "ms",
            "HTTPRoute edit to the last waypoint's ACK, median",
        )
        add(
            "route_change_p99",
            _ms(stats.percentile(per_change, 0.99)),
            "ms",
            "HTTPRoute edit to the last waypoint's ACK, p99",
        )
    if server.churn is not None:
        _churn(add, server.churn, floor, server)
    if server.csr:
        _csr(add, server.csr)
    if server.soak is not None:
        _soak(add, server.soak, report)
    changes = [c for c in (server.singles, server.routes, server.churn) if c is not None]
    if changes:
        add(
            "changes_not_converged",
            sum(len(c.not_converged) for c in changes),
            "changes",
            "changes some affected proxy never ACKed",
        )
        add(
            "deliveries_resynced",
            sum(o.delivery.resynced for c in changes for o in c.outcomes),
            "deliveries",
            "proxy re-synced (reconnected) before receiving a change",
        )
    final = server.final
    add("nacks", final.nacks, "responses", "responses the proxies NACKed")
    add("stream_errors", final.stream_errors, "streams", "ADS streams that ended with an error")
    for note in outcome.notes:
        report.note(note)
    if final.first_nack:
        report.note(f"first NACK: {final.first_nack}")
    for text, count in sorted(final.errors.items(), key=lambda item: -item[1])[:5]:
        report.note(f"stream errors: {count} x {text}")
    for changes_ in changes:
        for bad in changes_.not_converged[:3]:
            report.note(
                f"not converged: change {bad.change.id} {bad.change.kind} "
                f"{bad.change.key}: {bad.delivery.missing} of {bad.delivery.affected} "
                "proxies missing"
            )
    return report


def _config(outcome: RunResult, report: Report) -> None:
    scenario, options = outcome.scenario, outcome.options
    for name, value, unit in (
        ("ztunnels", scenario.ztunnels, "proxies"),
        ("waypoints", scenario.waypoints, "proxies"),
        ("pods", scenario.mesh.pods, "pods"),
        ("services", scenario.mesh.services, "services"),
        ("poll_interval", scenario.poll_interval, "s"),
        ("debounce_after", scenario.debounce_after, "s"),
        ("debounce_max", scenario.debounce_max, "s"),
        ("server_workers", options.serve.serving_processes(), "processes"),
        ("server_single_process", int(options.serve.workers == 0), "bool"),
        ("client_processes", options.client_processes, "processes"),
        ("tls", int(scenario.tls), "bool"),
        ("cpus", os.cpu_count() or 0, "cores"),
    ):
        report.add(f"config.{name}", value, unit)


def _sync(add: _Add, server: Exercise, floor: Exercise | None) -> None:
    sync = server.sync
    add(
        "connect_all_synced",
        sync.all_synced_seconds,
        "s",
        "first connect to the last proxy synced (ACKed its first full state)",
    )
    add(
        "connect_sync_p50",
        stats.percentile(sync.per_proxy_seconds, 0.5),
        "s",
        "per proxy: connect to synced, median",
    )
    add(
        "connect_sync_p99",
        stats.percentile(sync.per_proxy_seconds, 0.99),
        "s",
        "per proxy: connect to synced, p99",
    )
    if floor is not None:
        add(
            "floor_connect_all_synced",
            floor.sync.all_synced_seconds,
            "s",
            "the floor: first connect to last ztunnel synced",
        )
        add(
            "connect_floor_ratio",
            sync.all_synced_seconds / floor.sync.all_synced_seconds,
            "x",
            "connect to all synced, ours / floor",
        )
    status = server.final
    proxies = max(server.proxies, 1)
    add(
        "initial_kb_per_proxy",
        status.initial_bytes / proxies / 1024,
        "KB",
        "first responses (full state), per proxy",
    )
    add("kb_per_proxy", status.bytes / proxies / 1024, "KB", "everything received, per proxy")
    add(
        "messages_per_proxy", status.messages / proxies, "messages", "responses received, per proxy"
    )


def _server(add: _Add, server: Exercise, outcome: RunResult) -> None:
    if server.startup_seconds is not None:
        add(
            "server_startup",
            server.startup_seconds,
            "s",
            "xds serve started to /ready (mesh loaded and translated)",
        )
    if server.rss_ready:
        add(
            "server_rss_ready",
            server.rss_ready / _MB,
            "MB",
            "server memory (PSS), mesh loaded, no proxy",
        )
        add(
            "server_rss_synced",
            server.rss_synced / _MB,
            "MB",
            "server memory (PSS), every proxy connected and idle",
        )
        add(
            "server_rss_per_proxy",
            (server.rss_synced - server.rss_ready) / server.proxies / 1024,
            "KB",
            "RSS growth per connected proxy",
        )
    if server.whole is not None:
        add("server_rss_peak", server.whole.peak_rss_bytes / _MB, "MB", "server memory (PSS), peak")
        add("server_cpu", server.whole.cpu_seconds, "s", "server CPU over the whole run")
    if server.sync_window is not None:
        add(
            "server_cpu_connect",
            server.sync_window.cpu_seconds,
            "s",
            "server CPU from first connect to all synced",
        )
    if server.clients is not None:
        add(
            "generator_cpu",
            server.clients.cpu_seconds,
            "s",
            "CPU of all client processes over the server's part of the run",
        )
        add(
            "generator_busiest_cores",
            server.clients.busiest_cores,
            "cores",
            "busiest client process (near 1.0: the generator is a bottleneck)",
        )
    metrics = server.metrics
    # The pipeline's series are the config process's, observed alike in every serving
    # process; the per-proxy ones are each serving process's own, and with several a
    # scrape before and one after may reach different ones.
    pipeline = server.change_metrics
    moved = pipeline if outcome.options.serve.serving_processes() == 1 else {}
    batches = pipeline.get("pilot_debounce_time_count", 0.0)
    if batches:
        add("server_batches", batches, "batches", "change batches translated during the changes")
    for name, series, label, source in (
        (
            "server_debounce_mean",
            "pilot_debounce_time",
            "first event of a batch to its rebuild",
            pipeline,
        ),
        (
            "server_translate_mean",
            "pilot_pushcontext_init_seconds",
            "translating a batch",
            pipeline,
        ),
        (
            "server_convergence_mean",
            "pilot_proxy_convergence_time",
            "first event to a push written, per proxy",
            moved,
        ),
        (
            "server_change_to_ack_mean",
            "xds_change_to_ack_seconds",
            "first event to the proxy's ACK, per proxy",
            moved,
        ),
    ):
        count = source.get(f"{series}_count", 0.0)
        if count:
            add(
                name,
                source[f"{series}_sum"] / count * 1000,
                "ms",
                f"server-reported mean during the changes: {label}",
            )
    if "pilot_xds_pushes" in metrics:
        add(
            "server_pushes",
            metrics["pilot_xds_pushes"],
            "responses",
            "server-reported responses sent"
            + (" (one worker)" if outcome.options.serve.serving_processes() > 1 else ""),
        )


def _singles(add: _Add, ours: Changes, floors: Changes | None, floor: Exercise | None) -> None:
    pooled = [x for o in ours.outcomes if o.converged for x in o.delivery.latencies]
    add(
        "single_change_p50",
        _ms(stats.percentile(pooled, 0.5)),
        "ms",
        "one pod change to each ztunnel's ACK, median over proxies and changes",
    )
    add(
        "single_change_p90",
        _ms(stats.percentile(pooled, 0.9)),
        "ms",
        "one pod change to each ztunnel's ACK, p90 over proxies and changes",
    )
    add(
        "single_change_p99",
        _ms(stats.percentile(pooled, 0.99)),
        "ms",
        "one pod change to each ztunnel's ACK, p99 over proxies and changes",
    )
    add(
        "single_change_last_max",
        _ms(max((o.last for o in ours.outcomes if o.converged), default=math.nan)),
        "ms",
        "slowest single change to its last proxy",
    )
    if floors is None or floor is None:
        return
    floor_pooled = [x for o in floors.outcomes if o.converged for x in o.delivery.latencies]
    floor_p99 = stats.percentile(floor_pooled, 0.99)
    add(
        "floor_single_change_p99",
        _ms(floor_p99),
        "ms",
        "the floor: same changes, same poll tick and debounce, bare fan-out",
    )
    add(
        "single_change_floor_ratio",
        stats.percentile(pooled, 0.99) / floor_p99,
        "x",
        "single change p99, ours / floor",
    )
    fanout = _fanout(floors, floor)
    add(
        "floor_fanout_p99",
        _ms(stats.percentile(fanout, 0.99)),
        "ms",
        "the floor: push written to each ACK, p99 (no poll, no debounce)",
    )


def _cpu_per_change(add: _Add, exercise: Exercise, who: str) -> None:
    """CPU the single changes cost beyond idling, per change and per 1,000 streams: a figure
    that does not depend on the machine's speed as much as latencies do."""
    changes, window, idle = exercise.singles, exercise.singles_window, exercise.idle_window
    if changes is None or window is None or idle is None or not changes.outcomes:
        return
    idle_cores = idle.cores if idle.seconds > 0 and not math.isnan(idle.cores) else 0.0
    add(
        f"{who}_idle_cores",
        idle_cores,
        "cores",
        f"{who} CPU while every proxy is connected and nothing changes",
    )
    spent = max(0.0, window.cpu_seconds - idle_cores * window.seconds)
    per_change = spent / len(changes.outcomes)
    add(f"{who}_cpu_per_change", per_change, "s", f"{who} CPU per single change, idle subtracted")
    add(
        f"{who}_cpu_per_change_per_1k_streams",
        per_change / (exercise.proxies / 1000),
        "s",
        f"{who} CPU per single change per 1,000 connected proxies",
    )


def _fanout(changes: Changes, floor: Exercise) -> list[float]:
    """Per delivery, the floor's time from issuing the push to the proxy's ACK."""
    latencies: list[float] = []
    for outcome in changes.outcomes:
        push = next(
            (
                p
                for p in floor.pushes
                if outcome.change.key in p.names and p.issued_at >= outcome.applied_at
            ),
            None,
        )
        if push is None:
            continue
        offset = push.issued_at - outcome.applied_at
        latencies.extend(x - offset for x in outcome.delivery.latencies)
    return latencies


def _churn(add: _Add, ours: Changes, floor: Exercise | None, server: Exercise) -> None:
    floors = floor.churn if floor is not None else None
    per_change = [o.last for o in ours.outcomes if o.converged]
    pods = sum(1 for o in ours.outcomes if o.change.pod)
    if ours.applied_seconds > 0:
        add(
            "churn_pod_rate",
            pods / ours.applied_seconds,
            "pods/s",
            "pod changes written per second (achieved)",
            better=Better.HIGHER,
        )
    add("churn_changes", len(ours.outcomes), "changes", "changes made during churn")
    for name, q in (("churn_p50", 0.5), ("churn_p90", 0.9), ("churn_p99", 0.99)):
        add(
            name,
            _ms(stats.percentile(per_change, q)),
            "ms",
            f"change to its last proxy's ACK, {name.removeprefix('churn_')} over changes",
        )
    add("churn_max", _ms(stats.maximum(per_change)), "ms", "slowest change to its last proxy")
    # The first proxy's ACK is the pipeline (pick-up, debounce, translation, hand-over);
    # the rest of a change's time is the fan-out.
    first = [min(o.delivery.latencies) for o in ours.outcomes if o.converged]
    add(
        "churn_first_p50",
        _ms(stats.percentile(first, 0.5)),
        "ms",
        "change to its first proxy's ACK, p50 over changes",
    )
    if server.churn_window is not None:
        add(
            "server_cores_churn",
            server.churn_window.cores,
            "cores",
            "server CPU during churn (2 = both cores)",
        )
    if floors is not None:
        floor_changes = [o.last for o in floors.outcomes if o.converged]
        floor_p99 = stats.percentile(floor_changes, 0.99)
        add(
            "floor_churn_p99",
            _ms(floor_p99),
            "ms",
            "the floor: same churn, same poll tick and debounce, bare fan-out",
        )
        floor_first = [min(o.delivery.latencies) for o in floors.outcomes if o.converged]
        add(
            "floor_churn_first_p50",
            _ms(stats.percentile(floor_first, 0.5)),
            "ms",
            "the floor: change to its first proxy's ACK, p50 over changes",
        )
        add(
            "floor_churn_p50",
            _ms(stats.percentile(floor_changes, 0.5)),
            "ms",
            "the floor: change to its last proxy's ACK, p50 over changes",
        )
        window = floor.churn_window if floor is not None else None
        if floor is not None and window is not None:
            add("floor_cores_churn", window.cores, "cores", "the floor's CPU during churn")
            during = (floors.started_at, floors.finished_at)
            batches = len([p for p in floor.pushes if during[0] <= p.issued_at <= during[1]])
            add("floor_churn_batches", batches, "batches", "the floor's pushes during churn")
        add(
            "churn_floor_ratio",
            stats.percentile(per_change, 0.99) / floor_p99,
            "x",
            "churn p99, ours / floor",
        )


def _csr(add: _Add, results: Sequence[CsrResult]) -> None:
    completed = sum(r.closed_completed for r in results)
    seconds = max(r.closed_seconds for r in results)
    if seconds > 0:
        add(
            "csr_rate",
            completed / seconds,
            "certs/s",
            "CreateCertificate storm throughput",
            better=Better.HIGHER,
        )
    storm = [x for r in results for x in r.closed_latencies]
    add("csr_storm_p99", _ms(stats.percentile(storm, 0.99)), "ms", "latency during the storm")
    opened = [x for r in results for x in r.open_latencies]
    add(
        "csr_open_p50",
        _ms(stats.percentile(opened, 0.5)),
        "ms",
        "latency at the open-loop rate, median",
    )
    add(
        "csr_open_p99",
        _ms(stats.percentile(opened, 0.99)),
        "ms",
        "latency at the open-loop rate (from scheduled send), p99",
    )
    add("csr_errors", sum(r.errors for r in results), "calls", "failed CreateCertificate calls")


def _soak(add: _Add, soak: SoakResult, report: Report) -> None:
    add("soak_seconds", soak.seconds, "s", "soak duration")
    add("soak_changes", sum(soak.changes.values()), "changes", "config changes made")
    add("soak_restarts", soak.restarts, "streams", "streams restarted by the proxies")
    add(
        "soak_rss_after_warmup",
        soak.rss_after_warmup / _MB,
        "MB",
        "server RSS after warm-up (median of the first tenth after it)",
    )
    add("soak_rss_end", soak.rss_end / _MB, "MB", "server RSS at the end (last tenth's median)")
    add("soak_rss_peak", soak.rss_peak / _MB, "MB", "server RSS peak after warm-up")
    add("soak_rss_growth", soak.growth * 100, "%", "server RSS growth after warm-up")
    add(
        "soak_divergent_proxies",
        len(soak.divergent),
        "proxies",
        "proxies whose final state differs from xds render",
    )
    add(
        "soak_unsynced_proxies",
        len(soak.stragglers),
        "proxies",
        "proxies without a synced stream at the end",
    )
    if soak.consistent_after is not None:
        add(
            "soak_consistent_after",
            _ms(soak.consistent_after),
            "ms",
            "last change to every proxy holding xds render's state (checked every second)",
        )
    if soak.csr is not None:
        add(
            "soak_csrs",
            len(soak.csr.open_latencies),
            "certs",
            "certificates issued during the soak",
            better=Better.HIGHER,
        )
        add("soak_csr_errors", soak.csr.errors, "calls", "failed CreateCertificate calls")
        if soak.csr.first_error:
            report.note(f"soak: first CSR error: {soak.csr.first_error}")
    for bad in soak.stragglers[:5]:
        report.note(f"soak: proxy {bad.proxy} ({bad.node_id}) {bad.description}")
    for bad in soak.divergent[:5]:
        report.note(f"soak: proxy {bad.proxy} ({bad.node_id}) diverged: {bad.description}")
    report.note("soak changes: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.changes.items())))


def _ms(seconds: float) -> float:
    return seconds * 1000


class _Add(Protocol):
    """``build``'s helper that records a figure with the scenario's target for it."""

    def __call__(
        self, name: str, value: float, unit: str, label: str, *, better: Better = Better.LOWER
    ) -> None: ...
