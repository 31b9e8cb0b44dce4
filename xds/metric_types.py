"""Metric building blocks under istiod's conventions, shared by every layer that counts.

istiod exports counters without the ``_total`` suffix (its OpenTelemetry
exporter strips it). prometheus-client's ``Counter`` always appends it, so our
counters are a small collector that exposes the exact istiod sample names
(typed "untyped": the only type prometheus-client writes without renaming;
``rate()`` and ``increase()`` work the same).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, disable_created_metrics
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

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


class LoopHistogram(Collector):
    """A histogram for code that observes on one thread (the event loop): what
    prometheus-client's ``Histogram`` exposes, for a fraction of its cost.

    Every ADS message observes one or two histograms; prometheus-client's takes a lock
    for the sum and another for a bucket found by a linear search, ~3 % of a serving
    process under churn. Here an observation is a binary search and two additions. A
    scrape from another thread copies each child's counts in one step (atomic under the
    GIL); the sum may then be one observation apart from the counts, as it may with
    prometheus-client's separate locks.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(float(b) for b in buckets)
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        self._only: HistogramChild | None = None  # observed directly (per push): no lookup
        if not self._labelnames:
            self._only = self._children[()] = HistogramChild(self._bounds)
        if registry is not None:
            registry.register(self)

    def labels(self, *labels: str) -> HistogramChild:
        if len(labels) != len(self._labelnames):
            raise ValueError(f"{self.name} takes labels {self._labelnames}")
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = HistogramChild(self._bounds)
        return child

    def observe(self, value: float) -> None:
        """For a histogram without labels."""
        if self._only is None:
            raise ValueError(f"{self.name} takes labels {self._labelnames}")
        self._only.observe(value)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name, self._documentation, labels=list(self._labelnames)
        )
        edges = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for labels, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for edge, count in zip(edges, counts, strict=True):
                cumulative += count
                buckets.append((edge, float(cumulative)))
            family.add_metric(list(labels), buckets, total)
        yield family


class HistogramChild:
    """One label set's counts: ``counts[i]`` observations in bucket ``i`` (the last is
    +Inf), not yet cumulative."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value: Prometheus buckets are upper-inclusive ("le").
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value
