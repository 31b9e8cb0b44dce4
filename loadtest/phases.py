"""The steps of a run, each bounded in time: connect and sync, changes, churn, CSRs.

Every step takes the fleet of simulated proxies and a subject (our server or
the floor) and returns what it measured; ``run`` turns that into figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtest import stats
from loadtest.churn import NOBODY, Change, Scheduled
from loadtest.csr import CsrJob, CsrResult
from loadtest.fleet import Fleet
from loadtest.progress import Progress
from loadtest.proxies import ProxySpec
from loadtest.servers import Subject
from loadtest.tracking import Delivery, Expectation
from loadtest.worker import Status


@dataclass
class Synced:
    started_at: float
    proxies: int
    all_synced_seconds: float  # NaN if not every proxy synced in time
    per_proxy_seconds: list[float]
    status: Status
    finished_at: float


@dataclass
class Outcome:
    """One change and how the proxies that had to get it got it."""

    change: Change
    delivery: Delivery
    applied_at: float

    @property
    def converged(self) -> bool:
        return self.delivery.affected > 0 and self.delivery.missing == 0

    @property
    def unaddressed(self) -> bool:
        """Made for no proxy on purpose (a Service edit no on-demand ztunnel looked up)."""
        return self.change.audience == NOBODY

    @property
    def last(self) -> float:
        return stats.maximum(self.delivery.latencies) if self.converged else math.inf

    def quantile(self, q: float) -> float:
        return stats.percentile(self.delivery.latencies, q)


@dataclass
class Changes:
    outcomes: list[Outcome] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    applied_seconds: float = 0.0
    """From the first change written to the last (the achieved churn rate's window)."""

    @property
    def not_converged(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.converged and not o.unaddressed]


def connect(
    fleet: Fleet,
    subject: Subject,
    proxies: Sequence[ProxySpec],
    rate: float,
    timeout: float,
    progress: Progress,
    *,
    keep: bool = False,
) -> Synced:
    """Open every proxy's stream at ``rate`` per second; wait until all are synced.
    ``keep``: ztunnels hold their whole state (for the soak's final check)."""
    started_at = fleet.connect(proxies, subject.endpoint, rate, keep=keep)
    deadline = started_at + timeout
    total = len(proxies)
    while True:
        status = fleet.status()
        progress.every(
            1.0,
            "sync",
            f"{subject.label}: {status.started}/{total} connecting, "
            f"{status.streaming} streaming, {status.synced} synced"
            + (f", {status.stream_errors} stream errors" if status.stream_errors else ""),
        )
        if status.synced >= total or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    status = fleet.status(details=True)
    finished = status.synced >= total and status.last_first_sync is not None
    seconds = (
        status.last_first_sync - started_at if finished and status.last_first_sync else math.nan
    )
    progress.line(
        f"{subject.label}: {status.synced}/{total} synced"
        + (f" in {seconds:.2f} s" if finished else f" (gave up after {timeout:.0f} s)")
    )
    return Synced(started_at, total, seconds, status.sync_seconds, status, time.monotonic())


def singles(
    fleet: Fleet,
    subject: Subject,
    changes: Sequence[Change],
    *,
    settle: float,
    gap: float,
    progress: Progress,
) -> Changes:
    """One change at a time: apply, wait until every proxy ACKed it (or ``settle``), pause."""
    result = Changes(started_at=time.monotonic())
    fleet.track([c.key for c in changes])
    applied: dict[int, float] = {}
    for number, change in enumerate(changes, 1):
        applied_at = applied[change.id] = subject.apply(change)
        fleet.expect([_expectation(change, applied_at)])
        _wait_for_acks(fleet, settle)
        progress.line(
            f"{subject.label}: change {number}/{len(changes)} ({change.kind}) "
            f"done in {time.monotonic() - applied_at:.2f} s"
        )
        time.sleep(gap)
    deliveries = fleet.collect()
    result.outcomes = [
        Outcome(c, deliveries.get(c.id, Delivery(c.id)), applied[c.id]) for c in changes
    ]
    result.finished_at = time.monotonic()
    return result


def churn(
    fleet: Fleet,
    subject: Subject,
    schedule: Sequence[Scheduled],
    *,
    settle: float,
    progress: Progress,
) -> Changes:
    """Apply changes on schedule (falling behind if a write is slow), then wait for ACKs."""
    result = Changes()
    fleet.track([s.change.key for s in schedule])
    start = time.monotonic() + 0.2
    result.started_at = start
    pending: list[Expectation] = []
    applied: dict[int, float] = {}
    first_applied = last_applied = start
    for number, item in enumerate(schedule):
        due = start + item.offset
        while (now := time.monotonic()) < due:
            fleet.expect(pending)
            pending = []
            progress.every(
                1.0, "churn", f"{subject.label}: churn {number}/{len(schedule)} changes applied"
            )
            time.sleep(min(due - now, 0.01))
        applied_at = applied[item.change.id] = subject.apply(item.change)
        if number == 0:
            first_applied = applied_at
        last_applied = applied_at
        pending.append(_expectation(item.change, applied_at))
    fleet.expect(pending)
    result.applied_seconds = last_applied - first_applied
    progress.line(
        f"{subject.label}: churn: {len(schedule)} changes applied in "
        f"{result.applied_seconds:.1f} s; waiting for ACKs"
    )
    _wait_for_acks(fleet, settle, progress, subject.label)
    deliveries = fleet.collect()
    result.outcomes = [
        Outcome(s.change, deliveries.get(s.change.id, Delivery(s.change.id)), applied[s.change.id])
        for s in schedule
    ]
    result.finished_at = time.monotonic()
    return result


def csr(fleet: Fleet, jobs: Sequence[CsrJob], progress: Progress) -> list[CsrResult]:
    progress.line(
        f"server: CSR storm: {sum(j.closed_requests for j in jobs)} calls, "
        f"then {sum(j.open_rate for j in jobs):.0f}/s for {jobs[0].open_seconds:g} s"
    )
    return fleet.csr(jobs)


def idle(fleet: Fleet, seconds: float, progress: Progress, label: str) -> Status:
    progress.line(f"{label}: idle for {seconds:g} s")
    time.sleep(seconds)
    return fleet.status()


def _expectation(change: Change, applied_at: float) -> Expectation:
    return Expectation(change.id, change.key, change.audience, change.expect, applied_at)


def _wait_for_acks(
    fleet: Fleet, settle: float, progress: Progress | None = None, label: str = ""
) -> None:
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        status = fleet.status()
        if status.outstanding == 0:
            return
        if progress is not None:
            progress.every(
                1.0,
                "acks",
                f"{label}: {status.outstanding} changes not yet ACKed "
                "by every proxy (counted per client process)",
            )
        time.sleep(0.02)
