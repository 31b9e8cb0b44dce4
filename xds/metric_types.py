"""Metric building blocks under istiod's conventions, shared by every layer that counts.

istiod exports counters without the ``_total`` suffix (its OpenTelemetry
exporter strips it). prometheus-client's ``Counter`` always appends it, so our
counters are a small collector that exposes the exact istiod sample names
(typed "untyped": the only type prometheus-client writes without renaming;
``rate()`` and ``increase()`` work the same).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, disable_created_metrics
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

# The *_created series only add noise next to istiod-named metrics.
disable_created_metrics()  # type: ignore[no-untyped-call]

# istiod's convergence buckets plus finer ones for our sub-second targets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)
SIZE_BUCKETS = (1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000)


class IstioCounter(Collector):
    """A counter exposed under exactly ``name`` (no ``_total``), as istiod does."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._values: defaultdict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if len(labels) != len(self._labelnames):
            raise ValueError(f"{self.name} takes labels {self._labelnames}")
        with self._lock:
            self._values[labels] += amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self.name, self._documentation, "unknown")
        with self._lock:
            for labels, value in self._values.items():
                metric.add_sample(
                    self.name, dict(zip(self._labelnames, labels, strict=True)), value
                )
        yield metric
