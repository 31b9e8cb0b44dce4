"""The Envoy ext_authz filter for an external authorizer (meshConfig.extensionProviders).

A CUSTOM AuthorizationPolicy does not decide itself: an RBAC filter evaluates its
rules in shadow mode only, which records the matching policy's name (prefixed
``istio-ext-authz-<provider>-``) in the dynamic metadata, and this filter calls the
authorizer only for requests that carry that mark (istiod's design).
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2, http_uri_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import duration_pb2

from xds.model.mesh import ExtAuthzProvider
from xds.translate.waypoint.protos import duration, typed

MATCH_PREFIX = "istio-ext-authz"
"""Policy names of CUSTOM rules start with ``<MATCH_PREFIX>-<provider>-``."""
SHADOW_STAT_PREFIX = "istio_ext_authz_"
_RBAC_METADATA = "envoy.filters.http.rbac"  # where every HTTP RBAC filter writes
_DEFAULT_TIMEOUT = timedelta(seconds=600)


def policy_prefix(provider: str) -> str:
    return f"{MATCH_PREFIX}-{provider}-"


def http_filter(provider: ExtAuthzProvider, cluster: str) -> hcm_pb2.HttpFilter:
    """The ext_authz filter calling ``provider`` through ``cluster``, enabled only for
    requests a CUSTOM rule of that provider matched."""
    config = ext_authz_pb2.ExtAuthz(
        transport_api_version=config_source_pb2.V3,
        failure_mode_allow=provider.fail_open,
        filter_enabled_metadata=_marked_by(provider.name),
    )
    if provider.status_on_error is not None:
        # The enum is open (proto3): any HTTP status is a valid value, named or not.
        code = cast(http_status_pb2.StatusCode, provider.status_on_error)
        config.status_on_error.CopyFrom(http_status_pb2.HttpStatus(code=code))
    timeout = duration(provider.timeout or _DEFAULT_TIMEOUT)
    if provider.grpc:
        config.grpc_service.CopyFrom(
            grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
                    cluster_name=cluster, authority=provider.hostname
                ),
                timeout=timeout,
            )
        )
    else:
        _http_service(config, provider, cluster, timeout)
    return hcm_pb2.HttpFilter(
        name=f"envoy.filters.http.ext_authz.{provider.name}", typed_config=typed(config)
    )


def _http_service(
    config: ext_authz_pb2.ExtAuthz,
    provider: ExtAuthzProvider,
    cluster: str,
    timeout: duration_pb2.Duration,
) -> None:
    service = config.http_service
    service.path_prefix = provider.path_prefix
    # The URI is required but unused: the cluster decides where the check goes.
    service.server_uri.CopyFrom(
        http_uri_pb2.HttpUri(uri=f"http://{provider.hostname}", cluster=cluster, timeout=timeout)
    )
    for key, value in provider.include_additional_headers_in_check.items():
        service.authorization_request.headers_to_add.add(key=key, value=value)
    response = service.authorization_response
    for target, patterns in (
        (response.allowed_upstream_headers, provider.headers_to_upstream_on_allow),
        (response.allowed_client_headers, provider.headers_to_downstream_on_deny),
        (response.allowed_client_headers_on_success, provider.headers_to_downstream_on_allow),
        (config.allowed_headers, provider.include_request_headers_in_check),
    ):
        if patterns:  # an empty list would still mark the field as set
            target.patterns.extend(_header_pattern(pattern) for pattern in patterns)


def _header_pattern(pattern: str) -> string_pb2.StringMatcher:
    """istiod's header patterns: ``x-*`` a prefix, ``*-id`` a suffix, else exact; any case."""
    if pattern.startswith("*"):
        return string_pb2.StringMatcher(suffix=pattern[1:], ignore_case=True)
    if pattern.endswith("*"):
        return string_pb2.StringMatcher(prefix=pattern[:-1], ignore_case=True)
    return string_pb2.StringMatcher(exact=pattern, ignore_case=True)


def _marked_by(provider: str) -> metadata_pb2.MetadataMatcher:
    return metadata_pb2.MetadataMatcher(
        filter=_RBAC_METADATA,
        path=[
            metadata_pb2.MetadataMatcher.PathSegment(
                key=f"{SHADOW_STAT_PREFIX}shadow_effective_policy_id"
            )
        ],
        value=value_pb2.ValueMatcher(
            string_match=string_pb2.StringMatcher(prefix=f"{MATCH_PREFIX}-{provider}")
        ),
    )
