"""Metrics of the Kubernetes source (our own names; istiod has no equivalents)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WATCH_UP = Gauge(
    "xds_kubernetes_watch_up",
    "1 while a resource is being watched, 0 while its watch is failing (the last known "
    "state is served meanwhile)",
    ["resource"],
)
WATCH_ERRORS = Counter(
    "xds_kubernetes_watch_errors",
    "Failed lists and watches, by resource and reason",
    ["resource", "reason"],
)
RELISTS = Counter(
    "xds_kubernetes_relists",
    "Lists after a watch's resourceVersion expired (410 Gone)",
    ["resource"],
)
UNAVAILABLE = Gauge(
    "xds_kubernetes_resources_unavailable",
    "Modelled kinds not watched: CRD not installed (reason=missing) or RBAC (forbidden)",
    ["reason"],
)
