"""istiod's mesh config: what is read, what is reported as ignored, and bad values named."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from xds.model.errors import ManifestError
from xds.model.frozen import FrozenMap
from xds.model.mesh import (
    DEFAULT_ACCESS_LOG,
    ExtAuthzProvider,
    FileAccessLogProvider,
    MeshConfig,
    ProxyDefaults,
)
from xds.model.parse.mesh_config import parse_mesh_config

MESH = """
trustDomain: example.org
rootNamespace: mesh-root
accessLogFile: /dev/stdout
defaultConfig:
  holdApplicationUntilProxyStarts: true
  discoveryAddress: istiod.mesh.svc:15012
  concurrency: 2
  drainDuration: 20s
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
extensionProviders:
- name: opa
  envoyExtAuthzGrpc: {service: authz/opa.authz.svc.cluster.local, port: 9191, timeout: 2s}
- name: checker
  envoyExtAuthzHttp:
    service: checker.authz.svc.cluster.local
    port: 8000
    failOpen: true
    statusOnError: "503"
    pathPrefix: /check
    includeRequestHeadersInCheck: [x-user]
    includeAdditionalHeadersInCheck: {x-from: waypoint}
    headersToUpstreamOnAllow: [x-auth-*]
    headersToDownstreamOnDeny: [x-reason]
    headersToDownstreamOnAllow: [x-ok]
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}
- name: requests
  envoyFileAccessLog: {path: /var/log/requests.log, logFormat: {text: "%REQ(:PATH)%"}}
"""


def test_what_is_read_and_what_is_ignored() -> None:
    config, ignored = parse_mesh_config(yaml.safe_load(MESH), MeshConfig(cluster_id="east"))
    assert config.trust_domain == "example.org"
    assert config.root_namespace == "mesh-root"
    assert config.cluster_id == "east"  # not the mesh config's to say
    assert config.extension_providers == (
        ExtAuthzProvider(
            name="opa",
            grpc=True,
            service="authz/opa.authz.svc.cluster.local",
            port=9191,
            timeout=timedelta(seconds=2),
        ),
        ExtAuthzProvider(
            name="checker",
            grpc=False,
            service="checker.authz.svc.cluster.local",
            port=8000,
            fail_open=True,
            status_on_error=503,
            path_prefix="/check",
            include_request_headers_in_check=("x-user",),
            include_additional_headers_in_check=FrozenMap({"x-from": "waypoint"}),
            headers_to_upstream_on_allow=("x-auth-*",),
            headers_to_downstream_on_deny=("x-reason",),
            headers_to_downstream_on_allow=("x-ok",),
        ),
    )
    assert config.extension_providers[0].hostname == "opa.authz.svc.cluster.local"
    assert config.access_log_file == "/dev/stdout"
    assert config.access_log_providers == (
        FileAccessLogProvider("requests", "/var/log/requests.log", "%REQ(:PATH)%"),
    )
    assert config.access_log_provider("envoy") == DEFAULT_ACCESS_LOG  # istiod's built-in
    assert config.access_log_provider("nope") is None
    assert config.proxy_defaults == ProxyDefaults("istiod.mesh.svc:15012", 2, timedelta(seconds=20))
    # In document order; outboundTrafficPolicy is for sidecars (istiod never applies it
    # to ztunnel or waypoints).
    assert ignored == (
        "defaultConfig.holdApplicationUntilProxyStarts",
        "outboundTrafficPolicy",
        "extensionProviders[2].opentelemetry",
    )


def test_an_empty_document_keeps_the_base() -> None:
    base = MeshConfig(trust_domain="a.b")
    assert parse_mesh_config(None, base) == (base, ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mesh config object"),
        (
            "extensionProviders: [{name: a, envoyExtAuthzGrpc: {service: s}}]",
            "extensionProviders[0].envoyExtAuthzGrpc.port: required field is missing",
        ),
        (
            "extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1, "
            "statusOnError: teapot}}]",
            "extensionProviders[0].envoyExtAuthzHttp.statusOnError: expected an HTTP status",
        ),
        (
            "extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1, "
            "pathPrefix: check}}]",
            'extensionProviders[0].envoyExtAuthzHttp.pathPrefix: must begin with "/"',
        ),
        (
            "extensionProviders: [{name: a, envoyExtAuthzHttp: {service: s, port: 1, "
            "headersToUpstreamOnAllow: ['*']}}]",
            "headersToUpstreamOnAllow: a single",
        ),
        (
            "extensionProviders: [{name: a, envoyExtAuthzGrpc: {service: s, port: 1}}, "
            "{name: a, envoyExtAuthzGrpc: {service: t, port: 2}}]",
            'extensionProviders[1].name: duplicate provider name "a"',
        ),
        (
            "defaultConfig: {discoveryAddress: istiod}",
            'defaultConfig.discoveryAddress: expected "host:port", got "istiod"',
        ),
        ("defaultConfig: {concurrency: -1}", "defaultConfig.concurrency: expected an integer"),
        ("defaultConfig: {drainDuration: soon}", "defaultConfig.drainDuration"),
    ],
)
def test_bad_values_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_mesh_config(yaml.safe_load(text))
    assert message in str(caught.value)
