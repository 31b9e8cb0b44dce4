"""Prometheus metrics of the serving layer under istiod's names, so existing dashboards
keep working (the counter type and buckets: ``xds.metric_types``)."""

from __future__ import annotations

import time

import grpc
from prometheus_client import Gauge

from xds.metric_types import (
    LATENCY_BUCKETS,
    SIZE_BUCKETS,
    HistogramChild,
    IstioCounter,
    LoopHistogram,
)
from xds.serving.ads import Connection, Response
from xds.serving.session import Received, RequestKind
from xds.type_urls import short_name
from xds.version import __version__

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
CONFIG_SIZE = LoopHistogram(
    "pilot_xds_config_size_bytes",
    "Size of each xDS response in bytes.",
    ["type"],
    buckets=SIZE_BUCKETS,
)
CONVERGENCE = LoopHistogram(
    "pilot_proxy_convergence_time",
    "Seconds from a config change to its push being written to a proxy.",
    buckets=LATENCY_BUCKETS,
)
CHANGE_TO_ACK = LoopHistogram(
    "xds_change_to_ack_seconds",
    "Seconds from a config change to the proxy's ACK of it.",
    ["type"],
    buckets=LATENCY_BUCKETS,
)
SEND_TO_ACK = LoopHistogram(
    "xds_send_to_ack_seconds",
    "Seconds from writing a response to receiving its ACK or NACK.",
    ["type"],
    buckets=LATENCY_BUCKETS,
)


_TypeChildren = tuple[str, HistogramChild, HistogramChild, HistogramChild]
"""A type's label, then its change-to-ACK, send-to-ACK and config-size histograms."""


class AdsMetrics:
    """The ``AdsObserver`` that records ADS activity in the metrics above.

    It runs for every message of every stream, on the event loop: labelled children are
    looked up once per type and kept, and the histograms take no lock."""

    def __init__(self) -> None:
        self._per_type: dict[str, _TypeChildren] = {}

    def _children(self, type_url: str) -> _TypeChildren:
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
