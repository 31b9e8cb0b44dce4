"""Metric building blocks: what they expose is what prometheus-client's would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from xds.metric_types import LATENCY_BUCKETS, SIZE_BUCKETS, LoopHistogram

# Values on, just below and just above bucket bounds, zero, negative, past the last bound.
OBSERVED = [0.0, -1.0, 0.005, 0.0049, 0.0051, 0.1, 0.3, 1.0, 2.5, 30.0, 30.5, 1e9]


@pytest.mark.parametrize(
    ("labelnames", "buckets", "values"),
    [
        ((), LATENCY_BUCKETS, OBSERVED),
        (("type",), LATENCY_BUCKETS, OBSERVED),
        (("type",), SIZE_BUCKETS, [1, 2, 10_000, 10_001, 4_000_000, 50_000_000]),
        (("type",), LATENCY_BUCKETS, []),  # a child that never observed anything
    ],
)
def test_loop_histogram_exposes_what_prometheus_client_does(
    labelnames: tuple[str, ...], buckets: tuple[float, ...], values: list[float]
) -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LoopHistogram("h_seconds", "Help.", labelnames, buckets=buckets, registry=ours_registry)
    theirs = Histogram("h_seconds", "Help.", labelnames, buckets=buckets, registry=theirs_registry)
    pairs = (
        [(ours.labels(t), theirs.labels(t)) for t in ("Address", "Authorization")]
        if labelnames
        else [(ours, theirs)]
    )
    for our_child, their_child in pairs:
        for value in values:
            our_child.observe(value)
            their_child.observe(value)
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)


def test_loop_histogram_checks_its_labels() -> None:
    histogram = LoopHistogram("h", "Help.", ["type"], registry=None)
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels()
