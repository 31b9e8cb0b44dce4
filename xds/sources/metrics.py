"""The config sources' metrics."""

from __future__ import annotations

from prometheus_client import Gauge

CONFIG_ERRORS = Gauge(
    "xds_config_errors",
    "Config objects currently rejected as invalid (their last good version, if any, is "
    "served), by source: files, or kubernetes/<resource>.",
    ["source"],
)
