"""istiod's mesh config (the ``mesh`` YAML of the ``istio`` ConfigMap) as ``MeshConfig``.

Read: ``trustDomain``, ``rootNamespace``, ``accessLogFile``/``accessLogFormat``, of
``extensionProviders`` the external authorizers (``envoyExtAuthzGrpc``,
``envoyExtAuthzHttp``) that CUSTOM AuthorizationPolicies name and the file access logs
(``envoyFileAccessLog``) that Telemetry names, and of ``defaultConfig`` what the waypoint
Deployments use (``discoveryAddress``, ``concurrency``, ``drainDuration``). Every other
field is listed by ``parse_mesh_config`` as ignored, for a warning: the document is
istiod's, most of it is for sidecars (``outboundTrafficPolicy`` among them: istiod applies
it to sidecars only, never to ztunnel or waypoints).
"""

from __future__ import annotations

from dataclasses import replace

from xds.model.errors import ManifestError
from xds.model.frozen import FrozenMap
from xds.model.mesh import ExtAuthzProvider, FileAccessLogProvider, MeshConfig, ProxyDefaults
from xds.model.parse.reader import ObjectRef, Reader

_PROVIDER_KINDS = ("envoyExtAuthzGrpc", "envoyExtAuthzHttp")


def parse_mesh_config(
    document: object, base: MeshConfig | None = None
) -> tuple[MeshConfig, tuple[str, ...]]:
    """``base`` with what ``document`` sets; and the paths of the fields not read.

    Raises ``ManifestError`` (kind ``MeshConfig``) naming the field of a bad value."""
    ref = ObjectRef(kind="MeshConfig", name="mesh")
    root = Reader(document, "", ref, track=True)
    if document is not None and not isinstance(document, dict):
        root.fail("expected a mesh config object")
    config = base or MeshConfig()
    providers = []
    access_logs = []
    seen: set[str] = set()
    for entry in root.items("extensionProviders"):
        name = entry.required_string("name")
        if name in seen:
            entry.fail(f'duplicate provider name "{name}"', "name")
        seen.add(name)
        provider = _ext_authz(entry, name)
        if provider is not None:
            providers.append(provider)
        elif entry.has("envoyFileAccessLog"):
            body = entry.obj("envoyFileAccessLog")
            access_logs.append(
                FileAccessLogProvider(
                    name=name,
                    path=body.string("path") or "/dev/stdout",
                    text_format=body.obj("logFormat").opt_string("text"),
                )
            )
    config = replace(
        config,
        proxy_defaults=(
            _proxy_defaults(root.obj("defaultConfig"))
            if root.has("defaultConfig")
            else config.proxy_defaults
        ),
        trust_domain=root.string("trustDomain", config.trust_domain),
        root_namespace=root.string("rootNamespace", config.root_namespace),
        extension_providers=tuple(providers),
        access_log_providers=tuple(access_logs),
        access_log_file=root.string("accessLogFile"),
        access_log_format=root.opt_string("accessLogFormat") or None,
    )
    return config, root.unread()


def _proxy_defaults(proxy: Reader) -> ProxyDefaults:
    address = proxy.opt_string("discoveryAddress")
    if address is not None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            proxy.fail(f'expected "host:port", got "{address}"', "discoveryAddress")
    return ProxyDefaults(
        discovery_address=address,
        concurrency=proxy.opt_integer("concurrency", 0, 1024, "an integer 0-1024"),
        drain_duration=proxy.opt_duration("drainDuration"),
    )


def _ext_authz(entry: Reader, name: str) -> ExtAuthzProvider | None:
    kinds = [kind for kind in _PROVIDER_KINDS if entry.has(kind)]
    if not kinds:
        return None  # a tracing or logging provider: reported as not read
    if len(kinds) > 1:
        entry.fail(f"expected one provider type, got {' and '.join(kinds)}")
    body = entry.obj(kinds[0])
    grpc = kinds[0] == "envoyExtAuthzGrpc"
    status = body.opt_string("statusOnError")
    status_code = None
    if status is not None:
        if not status.isdigit() or not 100 <= int(status) <= 599:
            body.fail(
                f'expected an HTTP status code such as "503", got "{status}"', "statusOnError"
            )
        status_code = int(status)
    prefix = body.string("pathPrefix")
    if prefix and not prefix.startswith("/"):
        body.fail(f'must begin with "/", got "{prefix}"', "pathPrefix")
    headers = (
        "includeRequestHeadersInCheck",
        "headersToUpstreamOnAllow",
        "headersToDownstreamOnDeny",
        "headersToDownstreamOnAllow",
    )
    lists = {key: body.strings(key) for key in headers}
    for key, values in lists.items():
        if "*" in values:
            body.fail('a single "*" is not supported; use a prefix or suffix pattern', key)
    return ExtAuthzProvider(
        name=name,
        grpc=grpc,
        service=body.required_string("service"),
        port=body.port("port"),
        timeout=body.opt_duration("timeout"),
        fail_open=body.boolean("failOpen"),
        status_on_error=status_code,
        path_prefix=prefix,
        include_request_headers_in_check=lists["includeRequestHeadersInCheck"],
        include_additional_headers_in_check=FrozenMap(
            sorted(body.string_map("includeAdditionalHeadersInCheck").items())
        ),
        headers_to_upstream_on_allow=lists["headersToUpstreamOnAllow"],
        headers_to_downstream_on_deny=lists["headersToDownstreamOnDeny"],
        headers_to_downstream_on_allow=lists["headersToDownstreamOnAllow"],
    )


__all__ = ["ManifestError", "parse_mesh_config"]
