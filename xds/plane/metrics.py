"""The config pipeline's metrics, under istiod's names."""

from __future__ import annotations

from prometheus_client import Histogram

from xds.metric_types import LATENCY_BUCKETS, IstioCounter
from xds.model.mesh import ChangeSet

DEBOUNCE_TIME = Histogram(
    "pilot_debounce_time",
    "Seconds from the first config event of a batch to its rebuild.",
    buckets=LATENCY_BUCKETS,
)
REBUILD_TIME = Histogram(
    "pilot_pushcontext_init_seconds",
    "Seconds spent translating a batch of config changes into resources.",
    buckets=LATENCY_BUCKETS,
)
CONFIG_EVENTS = IstioCounter(
    "pilot_k8s_reg_events",
    "Config objects added, updated or deleted, by kind and event.",
    ["type", "event"],
)


def count_events(changes: ChangeSet) -> None:
    for event, keys in (
        ("add", changes.added),
        ("update", changes.updated),
        ("delete", changes.deleted),
    ):
        for key in keys:
            CONFIG_EVENTS.inc(key.kind, event)
