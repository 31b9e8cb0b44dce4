"""Prometheus metrics under istiod's names, so existing dashboards keep working.

istiod exports counters without the ``_total`` suffix (its OpenTelemetry
exporter strips it). prometheus-client's ``Counter`` always appends it, so our
counters are a small collector that exposes the exact istiod sample names
(typed "untyped": the only type prometheus-client writes without renaming;
``rate()`` and ``increase()`` work the same).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from prometheus_client import REGISTRY, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from xds.serving.ads import Connection, Response
from xds.serving.session import Received, RequestKind
from xds.type_urls import short_name
from xds.version import __version__

# The *_created series only add noise next to istiod-named metrics.
disable_created_metrics()  # type: ignore[no-untyped-call]

# istiod's convergence buckets plus finer ones for our sub-second targets.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)
_SIZE_BUCKETS = (1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000)


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


# -- ADS ----------------------------------------------------------------------
XDS_CLIENTS = Gauge(
    "pilot_xds", "Number of proxies connected to this instance.", ["version", "proxy_type"]
)
XDS_PUSHES = IstioCounter("pilot_xds_pushes", "xDS responses sent, by type.", ["type"])
XDS_REJECTS = IstioCounter(
    "pilot_total_xds_rejects", "xDS responses rejected by proxies (NACK).", ["type"]
)
XDS_ACKS = IstioCounter("xds_acks", "xDS responses acknowledged by proxies (ACK).", ["type"])
STREAM_REFUSALS = IstioCounter(
    "xds_stream_refusals",
    "xDS streams refused before being served, by gRPC status "
    "(UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT).",
    ["code"],
)
CONFIG_SIZE = Histogram(
    "pilot_xds_config_size_bytes",
    "Size of each xDS response in bytes.",
    ["type"],
    buckets=_SIZE_BUCKETS,
)
CONVERGENCE = Histogram(
    "pilot_proxy_convergence_time",
    "Seconds from a config change to its push being written to a proxy.",
    buckets=_LATENCY_BUCKETS,
)
CHANGE_TO_ACK = Histogram(
    "xds_change_to_ack_seconds",
    "Seconds from a config change to the proxy's ACK of it.",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
SEND_TO_ACK = Histogram(
    "xds_send_to_ack_seconds",
    "Seconds from writing a response to receiving its ACK or NACK.",
    ["type"],
    buckets=_LATENCY_BUCKETS,
)
# -- config pipeline -----------------------------------------------------------
DEBOUNCE_TIME = Histogram(
    "pilot_debounce_time",
    "Seconds from the first config event of a batch to its rebuild.",
    buckets=_LATENCY_BUCKETS,
)
REBUILD_TIME = Histogram(
    "pilot_pushcontext_init_seconds",
    "Seconds spent translating a batch of config changes into resources.",
    buckets=_LATENCY_BUCKETS,
)
CONFIG_EVENTS = IstioCounter(
    "pilot_k8s_reg_events",
    "Config objects added, updated or deleted, by kind and event.",
    ["type", "event"],
)
CONFIG_ERRORS = Gauge(
    "xds_config_errors", "Config objects currently rejected as invalid.", ["source"]
)


class AdsMetrics:
    """The ``AdsObserver`` that records ADS activity in the metrics above.

    It runs for every message of every stream, so labelled children are looked
    up once per type and kept (``labels()`` takes a lock and a dict lookup)."""

    def __init__(self) -> None:
        self._per_type: dict[str, tuple[str, Any, Any, Any]] = {}

    def _children(self, type_url: str) -> tuple[str, Any, Any, Any]:
        children = self._per_type.get(type_url)
        if children is None:
            label = short_name(type_url)
            children = (
                label,
                CHANGE_TO_ACK.labels(label),
                SEND_TO_ACK.labels(label),
                CONFIG_SIZE.labels(label),
            )
            self._per_type[type_url] = children
        return children

    def refused(self, code: grpc.StatusCode) -> None:
        STREAM_REFUSALS.inc(code.name)

    def connected(self, connection: Connection) -> None:
        XDS_CLIENTS.labels(__version__, connection.node.type.value).inc()

    def disconnected(self, connection: Connection) -> None:
        XDS_CLIENTS.labels(__version__, connection.node.type.value).dec()

    def received(self, connection: Connection, received: Received) -> None:
        label, change_to_ack, send_to_ack, _ = self._children(received.type_url)
        if received.kind is RequestKind.NACK:
            XDS_REJECTS.inc(label)
        elif received.kind is RequestKind.ACK:
            XDS_ACKS.inc(label)
            if received.since_change is not None:
                change_to_ack.observe(received.since_change)
        if received.latency is not None:
            send_to_ack.observe(received.latency)

    def sent(
        self, connection: Connection, response: Response, size: int, origin: float | None
    ) -> None:
        label, _, _, config_size = self._children(response.type_url)
        XDS_PUSHES.inc(label)
        config_size.observe(size)
        if origin is not None:
            CONVERGENCE.observe(time.monotonic() - origin)
