"""CPU and memory of process trees, sampled from /proc (Linux only).

The server may be one process or a supervisor with ``--workers N`` children,
so every figure is the sum over the tree rooted at the pid it was started
as. CPU is ``utime + stime`` from ``/proc/<pid>/stat``; memory is the PSS
from ``/proc/<pid>/smaps_rollup``, so that what the processes of ``--workers`` share
(forked from one parent) counts once in the sum, not once per process. A process
that exits takes its CPU time with it (its parent has not waited for it yet), which
only matters for a worker that crashes mid-run; the run reports that as a stream
error anyway.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants that are alive now."""
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        pending.extend(_children(current))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    """Memory of one process: its proportional set size (each page it shares counted as
    its share), its RSS where the kernel has no ``smaps_rollup``; 0 if it is gone."""
    for path, field in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        except OSError:
            continue
    return 0


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    cpu_seconds: float
    rss_bytes: int
    processes: int
    busiest_cores: float = 0.0
    """CPU of the busiest single process since the previous sample, in cores."""


def sample(roots: Iterable[int], previous: dict[int, tuple[float, float]] | None = None) -> Sample:
    """One sample of the trees under ``roots``; ``previous`` (pid -> (time, cpu)) is
    updated in place and used to find the busiest process since the last call."""
    now = time.monotonic()
    cpu = 0.0
    rss = 0
    count = 0
    busiest = 0.0
    for root in roots:
        for pid in tree(root):
            used = cpu_seconds(pid)
            cpu += used
            rss += rss_bytes(pid)
            count += 1
            if previous is not None:
                before = previous.get(pid)
                if before is not None and now > before[0]:
                    busiest = max(busiest, (used - before[1]) / (now - before[0]))
                previous[pid] = (now, used)
    return Sample(now, cpu, rss, count, busiest)


@dataclass(frozen=True)
class Window:
    """What a process tree did between two instants."""

    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    last_rss_bytes: int
    busiest_cores: float

    @property
    def cores(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds > 0 else math.nan


class Sampler:
    """Samples process trees every ``interval`` seconds on a background thread."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._roots: dict[str, list[int]] = {}
        self._series: dict[str, list[Sample]] = {}
        self._previous: dict[str, dict[int, tuple[float, float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, label: str, pids: Sequence[int]) -> None:
        """Start (or restart) sampling the trees under ``pids`` as ``label``."""
        with self._lock:
            self._roots[label] = list(pids)
            self._series[label] = []
            self._previous[label] = {}
        self.now(label)

    def forget(self, label: str) -> None:
        with self._lock:
            self._roots.pop(label, None)

    def now(self, label: str) -> Sample:
        """Take a sample right now (also recorded in the series)."""
        with self._lock:
            roots = self._roots.get(label, [])
            previous = self._previous.setdefault(label, {})
            taken = sample(roots, previous)
            self._series.setdefault(label, []).append(taken)
        return taken

    def latest(self, label: str) -> Sample | None:
        with self._lock:
            series = self._series.get(label)
            return series[-1] if series else None

    def samples(self, label: str, start: float, end: float) -> list[Sample]:
        """The samples of ``label`` taken between ``start`` and ``end`` (monotonic)."""
        with self._lock:
            return [s for s in self._series.get(label, []) if start <= s.at <= end]

    def window(self, label: str, start: float, end: float) -> Window:
        """CPU used and memory held by ``label`` between ``start`` and ``end`` (monotonic)."""
        inside = self.samples(label, start, end)
        if len(inside) < 2:
            return Window(end - start, math.nan, 0, 0, math.nan)
        return Window(
            inside[-1].at - inside[0].at,
            inside[-1].cpu_seconds - inside[0].cpu_seconds,
            max(s.rss_bytes for s in inside),
            inside[-1].rss_bytes,
            max(s.busiest_cores for s in inside[1:]),
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                labels = list(self._roots)
            for label in labels:
                self.now(label)
