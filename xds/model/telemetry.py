"""Telemetry (telemetry.istio.io): the access-logging part a waypoint applies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from xds.model.frozen import Labels
from xds.model.meta import KubeObject
from xds.model.security import PolicyTargetRef

TELEMETRY_GROUP = "telemetry.istio.io"


class AccessLogMode(StrEnum):
    CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
    CLIENT = "CLIENT"
    SERVER = "SERVER"


@dataclass(frozen=True, slots=True)
class AccessLogging:
    """One ``accessLogging`` entry: no ``providers`` means the default one."""

    providers: tuple[str, ...] = ()
    disabled: bool = False
    mode: AccessLogMode = AccessLogMode.CLIENT_AND_SERVER


@dataclass(frozen=True, slots=True)
class Tracing:
    """One ``tracing`` entry: the part that needs no collector (the sampling decision
    carried in ``x-request-id`` and the trace headers)."""

    random_sampling_percentage: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry(KubeObject):
    """A Telemetry; ``selector`` ``None`` when absent (namespace- or mesh-wide)."""

    kind = "Telemetry"
    api_group = TELEMETRY_GROUP

    selector: Labels | None = None
    target_refs: tuple[PolicyTargetRef, ...] = ()
    access_logging: tuple[AccessLogging, ...] = ()
    tracing: tuple[Tracing, ...] = ()
