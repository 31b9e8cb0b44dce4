"""Parser for Telemetry (access logging; the rest is reported as ignored)."""

from __future__ import annotations

from xds.model.meta import ObjectMeta
from xds.model.parse.reader import Reader
from xds.model.parse.security import read_workload_selector, target_refs
from xds.model.telemetry import AccessLogging, AccessLogMode, Telemetry, Tracing


def parse_telemetry(doc: Reader, meta: ObjectMeta) -> Telemetry:
    spec = doc.obj("spec")
    return Telemetry(
        meta=meta,
        selector=read_workload_selector(spec, "selector"),
        target_refs=target_refs(spec),
        access_logging=tuple(
            AccessLogging(
                providers=tuple(p.required_string("name") for p in entry.items("providers")),
                disabled=entry.boolean("disabled"),
                mode=entry.obj("match").enum(
                    "mode", AccessLogMode, AccessLogMode.CLIENT_AND_SERVER
                ),
            )
            for entry in spec.items("accessLogging")
        ),
        tracing=tuple(
            Tracing(entry.opt_number("randomSamplingPercentage", 0.0, 100.0))
            for entry in spec.items("tracing")
        ),
    )
