"""File access logs of waypoint chains, HTTP and TCP (Telemetry / meshConfig.accessLogFile)."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2

from xds.model.mesh import FileAccessLogProvider
from xds.translate.waypoint.protos import typed

# istiod's default text format (pilot/pkg/model/telemetry_logging.go).
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
    '%CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" '
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% '
    "%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% "
    "%ROUTE_NAME%\n"
)


def file_access_logs(providers: Iterable[FileAccessLogProvider]) -> list[accesslog_pb2.AccessLog]:
    """One Envoy file access log per provider; a format always ends the line (istiod)."""
    out = []
    for provider in providers:
        text = provider.text_format or ISTIO_TEXT_FORMAT
        if not text.endswith("\n"):
            text += "\n"
        config = file_pb2.FileAccessLog(
            path=provider.path,
            log_format=substitution_format_string_pb2.SubstitutionFormatString(
                text_format_source=base_pb2.DataSource(inline_string=text)
            ),
        )
        out.append(
            accesslog_pb2.AccessLog(name="envoy.access_loggers.file", typed_config=typed(config))
        )
    return out
