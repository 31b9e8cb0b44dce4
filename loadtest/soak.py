"""The soak: a long stretch of everything at once, then "does every proxy hold the truth?"

For ``SoakSpec.seconds`` the mesh changes without pause (pods relabelled,
added and removed in equal numbers so the mesh keeps its size, Services and
AuthorizationPolicies edited back and forth), random proxies restart their
streams (ztunnels resend ``initial_resource_versions``; the server may also
end connections by age), and a client asks for certificates at a steady rate.
The server's memory is sampled throughout.

Then the changes stop and every simulated proxy's state is compared with what
``xds render`` computes from the final config directory (``consistency``),
retried for ``settle_seconds`` while the last changes are still on their way.

Figures: memory growth after warm-up (the median RSS of the last tenth of the
soak against the median of the first tenth after warm-up, so that one
allocation spike does not count), proxies whose state diverged, changes made,
restarts, certificates issued and failed.
"""

from __future__ import annotations

import collections
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loadtest.churn import Change, Planner
from loadtest.consistency import Expected
from loadtest.csr import CsrJob, CsrResult
from loadtest.fleet import Fleet
from loadtest.procstat import Sample, Sampler
from loadtest.progress import Progress
from loadtest.servers import Subject
from loadtest.worker import Diverged


@dataclass(frozen=True)
class SoakSpec:
    seconds: float = 1800.0
    warmup_fraction: float = 0.2
    """Memory growth is measured from the end of this share of the soak."""
    pods_per_second: float = 10.0
    service_edits_per_second: float = 0.5
    policy_edits_per_second: float = 0.5
    reconnects_per_second: float = 2.0
    """Stream restarts by the proxies (random ones, over the whole fleet)."""
    csrs_per_second: float = 5.0
    csr_account: str = "ns-0/svc-0"
    """The identity asking for certificates (namespace/serviceaccount)."""
    settle_seconds: float = 60.0
    """How long the final state may take to match once the changes stop."""


@dataclass
class SoakResult:
    seconds: float
    proxies: int
    changes: collections.Counter[str] = field(default_factory=collections.Counter)
    restarts: int = 0
    csr: CsrResult | None = None
    rss_after_warmup: float = 0.0
    rss_end: float = 0.0
    rss_peak: float = 0.0
    divergent: list[Diverged] = field(default_factory=list)
    stragglers: list[Diverged] = field(default_factory=list)
    """Proxies without a synced stream when the check gave up (their state not compared)."""
    consistent_after: float | None = None
    """Seconds from the last change until every proxy held the expected state."""

    @property
    def growth(self) -> float:
        """Memory growth after warm-up, as a fraction of the RSS then."""
        if self.rss_after_warmup <= 0:
            return float("nan")
        return (self.rss_end - self.rss_after_warmup) / self.rss_after_warmup


def run(
    fleet: Fleet,
    subject: Subject,
    planner: Planner,
    spec: SoakSpec,
    sampler: Sampler,
    progress: Progress,
    *,
    expected: Callable[[], dict[str, Expected]],
    csr: tuple[Fleet, CsrJob] | None = None,
) -> SoakResult:
    """Soak ``subject``; ``expected`` renders every proxy kind's state from the final
    config; ``csr`` is a fleet of its own and the job it runs for the whole soak."""
    label = subject.label
    proxies = fleet.status().proxies
    result = SoakResult(spec.seconds, proxies)
    csr_thread = _start_csr(csr, result)
    progress.line(
        f"{label}: soak for {spec.seconds:g} s: {spec.pods_per_second:g} pod changes/s, "
        f"{spec.service_edits_per_second:g} Service and {spec.policy_edits_per_second:g} "
        f"policy edits/s, {spec.reconnects_per_second:g} stream restarts/s, "
        f"{spec.csrs_per_second:g} CSRs/s"
    )
    started = time.monotonic()
    _churn(fleet, subject, planner, spec, result, progress, started + spec.seconds)
    last_change = time.monotonic()
    if csr_thread is not None:
        csr_thread.join()
    _memory(result, sampler.samples(label, started, last_change), started, spec)
    progress.line(
        f"{label}: soak done: {sum(result.changes.values())} changes, {result.restarts} "
        f"restarts; checking every proxy's state against xds render"
    )
    _check(fleet, result, expected(), last_change + spec.settle_seconds, last_change, progress)
    return result


def _start_csr(csr: tuple[Fleet, CsrJob] | None, result: SoakResult) -> threading.Thread | None:
    if csr is None:
        return None
    csr_fleet, job = csr

    def work() -> None:
        try:
            (result.csr,) = csr_fleet.csr([job])
        except Exception as error:  # reported as a failed soak, not lost with the thread
            result.csr = CsrResult(errors=1, first_error=f"the CSR client failed: {error}")

    thread = threading.Thread(target=work, name="soak-csr", daemon=True)
    thread.start()
    return thread


def _churn(
    fleet: Fleet,
    subject: Subject,
    planner: Planner,
    spec: SoakSpec,
    result: SoakResult,
    progress: Progress,
    end: float,
) -> None:
    rng = random.Random(13)
    # Adds and removals alternate with relabels, so the mesh keeps its size.
    pods = [planner.pod_relabel, planner.pod_add, planner.pod_relabel, planner.pod_remove]
    streams: list[tuple[float, Sequence[Callable[[], Change]]]] = [
        (spec.pods_per_second, pods),
        (spec.service_edits_per_second, [planner.service_edit]),
        (spec.policy_edits_per_second, [planner.policy_edit]),
    ]
    streams = [(rate, makers) for rate, makers in streams if rate > 0]
    total = sum(rate for rate, _ in streams)
    turns = [0] * len(streams)
    now = time.monotonic()
    next_change = now if total > 0 else end
    next_restart = now if spec.reconnects_per_second > 0 else end
    while (now := time.monotonic()) < end:
        if now >= next_change:
            which = rng.choices(range(len(streams)), [rate for rate, _ in streams])[0]
            makers = streams[which][1]
            change = makers[turns[which] % len(makers)]()
            turns[which] += 1
            subject.apply(change)
            result.changes[change.kind] += 1
            next_change += 1.0 / total
        if now >= next_restart:
            result.restarts += fleet.reconnect(1)
            next_restart += 1.0 / spec.reconnects_per_second
        progress.every(
            10.0,
            "soak",
            f"{subject.label}: soak {now - (end - spec.seconds):.0f}/{spec.seconds:g} s, "
            f"{sum(result.changes.values())} changes, {result.restarts} restarts",
        )
        time.sleep(max(0.0, min(next_change, next_restart, end) - time.monotonic()))


def _memory(result: SoakResult, samples: list[Sample], started: float, spec: SoakSpec) -> None:
    warm = started + spec.seconds * spec.warmup_fraction
    after = [s for s in samples if s.at >= warm]
    if not after:
        return
    tenth = max(1, len(after) // 10)
    result.rss_after_warmup = statistics.median(s.rss_bytes for s in after[:tenth])
    result.rss_end = statistics.median(s.rss_bytes for s in after[-tenth:])
    result.rss_peak = max(s.rss_bytes for s in after)


def _check(
    fleet: Fleet,
    result: SoakResult,
    expected: dict[str, Expected],
    deadline: float,
    last_change: float,
    progress: Progress,
) -> None:
    """Compare every second until each proxy has once been synced and held the expected
    state, or ``deadline``. Once is enough: nothing changes any more, and the server keeps
    ending connections by age, so some proxy is always between two streams."""
    confirmed: set[int] = set()
    everyone = set(range(result.proxies))
    while True:
        found = fleet.verify(expected)
        confirmed |= everyone - {d.proxy for d in found}
        if confirmed == everyone:
            result.consistent_after = time.monotonic() - last_change
            progress.line(
                f"every proxy holds what xds render gives, "
                f"{result.consistent_after:.1f} s after the last change"
            )
            return
        if time.monotonic() > deadline:
            left = [d for d in found if d.proxy not in confirmed]
            result.divergent = [d for d in left if d.synced]
            result.stragglers = [d for d in left if not d.synced]
            for bad in [*result.stragglers[:5], *result.divergent[:5]]:
                progress.line(f"proxy {bad.proxy} {bad.node_id}: {bad.description}")
            return
        time.sleep(1.0)
