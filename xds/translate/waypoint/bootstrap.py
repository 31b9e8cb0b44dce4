"""The bootstrap that connects a stock Envoy 1.40 to us as a waypoint (waypoint.md §9).

What istio-proxy gets from pilot-agent, written out for a plain Envoy:

* the node id ``waypoint~<ip>~<pod>.<ns>~<ns>.svc.<domain>`` and metadata
  whose ``LABELS`` name the Gateway (``gateway.networking.k8s.io/gateway-name``)
  and whose ``NAMESPACE`` is the Gateway's: the server picks the waypoint's
  scope from these two;
* ADS over gRPC (Delta by default, as pilot-agent forces for waypoints),
  with CDS and LDS from ADS and every other type reached through them;
* TLS to the control plane verified by its DNS name (SNI and SAN
  ``istiod.istio-system.svc`` by default), not by the dialled address, and
  ``authorization: Bearer <token>`` on the stream; or plaintext when no CA
  root is given (the unauthenticated port serves config but never secrets);
* the internal-listener bootstrap extension, without which Envoy rejects
  ``internal_listener`` (and with it the whole waypoint);
* admin on loopback, a readiness listener (``/healthz/ready``, Envoy's own
  ``/ready``) and a Prometheus listener, as istio-proxy has them;
* a runtime layer that keeps TCP bytes a server writes just before it closes
  (``RUNTIME_OVERRIDES``), plus an admin layer so an operator can inspect or
  flip runtime values at ``/runtime_modify``.

Two ways to send the token. ``token`` is inlined as gRPC ``initial_metadata``:
static, so a rotated token needs a new bootstrap (and an Envoy restart).
``token_path`` names a file that Envoy re-reads whenever it changes: the
xDS cluster gets an upstream credential-injector filter whose generic secret
comes from a file-based SDS document (``token_sds_document``) in the same
directory, watched for the atomic swaps the kubelet does on projected
volumes. Each new ADS stream then carries the current token, which is what
a long-lived waypoint with 12-hour projected tokens needs.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from ipaddress import ip_address

import yaml

from xds.translate.waypoint.protos import JsonValue

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
MANAGED_LABEL = "gateway.istio.io/managed"
XDS_CLUSTER = "xds-grpc"
ADMIN_CLUSTER = "admin"
DEFAULT_SERVER_NAME = "istiod.istio-system.svc"
ISTIO_VERSION = "1.31.0"
"""The Istio release whose waypoint contract this bootstrap and our server implement: sent
as node metadata ``ISTIO_VERSION``, the VERSION column of ``istioctl proxy-status``."""
TOKEN_SECRET = "xds-token"
TOKEN_SDS_FILE = "token-sds.yaml"

SEND_RST_ON_USER_SPACE_SOCKET = "envoy.reloadable_features.enable_send_rst_on_user_space_socket"
RUNTIME_OVERRIDES: dict[str, JsonValue] = {SEND_RST_ON_USER_SPACE_SOCKET: False}
"""Runtime values every waypoint needs on stock Envoy 1.40 (waypoint.md §13 caveat).

Without it, bytes that a TCP server writes right before it closes are lost on
the way back: the tunnel to the destination ends (``connect_originate`` sees
DATA with END_STREAM and closes its internal downstream *normally*), yet the
user-space socket pair reports that close to main_internal's ``tcp_proxy`` as a
reset (``ECONNRESET`` after the buffered bytes; RST emulation on internal
connections, new in 1.40). Since 1.38 ``tcp_proxy`` answers an upstream reset
with an abortive close of its downstream, which discards the bytes it has just
queued there and not yet flushed; the client gets an empty stream (``UR``
then ``UC`` in the access logs). With the guard off, internal connections close
with FIN semantics as they did up to 1.39, and the bytes arrive. What is given
up: a real RST is not propagated across the internal hops (it arrives as a
FIN), which is also how istio-proxy waypoints on Envoy <= 1.37 behave. The
guard is temporary in Envoy: re-check when it is removed (the live test
``test_write_then_close_needs_the_runtime_override`` fails once it no longer
matters)."""


@dataclass(frozen=True)
class BootstrapOptions:
    """Everything the bootstrap depends on; no I/O happens here (the CLI reads files)."""

    namespace: str
    name: str
    """The waypoint's Gateway."""
    xds_host: str
    xds_port: int
    pod_ip: str = "127.0.0.1"
    pod_name: str = ""
    """Defaults to ``<name>-0``; only used in the node id and metadata."""
    service_account: str = ""
    """Defaults to the Gateway name, as istiod names waypoint service accounts."""
    token: str | None = None
    """Sent as ``authorization: Bearer <token>``; ``None`` sends nothing."""
    token_path: str | None = None
    """A token file re-read on change (see the module docstring); excludes ``token``.
    Its directory must also hold ``TOKEN_SDS_FILE`` (``token_sds_document``)."""
    ca_root_path: str | None = None
    """PEM roots that verify the control plane; ``None`` means plaintext."""
    server_name: str = DEFAULT_SERVER_NAME
    """SNI and the SAN the control plane's certificate must carry."""
    delta: bool = True
    admin_port: int = 15000
    readiness_port: int = 15021
    """0 leaves the readiness listener out."""
    prometheus_port: int = 15090
    """0 leaves the Prometheus listener out."""
    cluster_domain: str = "cluster.local"
    cluster_id: str = "Kubernetes"
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token is not None and self.token_path is not None:
            raise ValueError("token and token_path are alternatives")

    @property
    def pod(self) -> str:
        return self.pod_name or f"{self.name}-0"

    @property
    def node_id(self) -> str:
        return (
            f"waypoint~{self.pod_ip}~{self.pod}.{self.namespace}~"
            f"{self.namespace}.svc.{self.cluster_domain}"
        )


def bootstrap(options: BootstrapOptions) -> dict[str, JsonValue]:
    """The bootstrap as plain data (the YAML/JSON form of ``config.bootstrap.v3.Bootstrap``)."""
    ads_source: dict[str, JsonValue] = {
        "ads": {},
        "initial_fetch_timeout": "0s",
        "resource_api_version": "V3",
    }
    grpc_service: dict[str, JsonValue] = {"envoy_grpc": {"cluster_name": XDS_CLUSTER}}
    if options.token is not None:
        grpc_service["initial_metadata"] = [
            {"key": "authorization", "value": f"Bearer {options.token}"}
        ]
    listeners = []
    if options.readiness_port:
        listeners.append(
            _admin_proxy_listener("readiness", options.readiness_port, "/healthz/ready", "/ready")
        )
    if options.prometheus_port:
        listeners.append(
            _admin_proxy_listener(
                "prometheus", options.prometheus_port, "/stats/prometheus", "/stats/prometheus"
            )
        )
    clusters = [_xds_cluster(options)]
    if listeners:
        clusters.append(_static_cluster(ADMIN_CLUSTER, "127.0.0.1", options.admin_port))
    return {
        "node": _node(options),
        "admin": {
            "address": {
                "socket_address": {"address": "127.0.0.1", "port_value": options.admin_port}
            }
        },
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3."
                    "InternalListener",
                    "buffer_size_kb": 64,
                },
            }
        ],
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [grpc_service],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "layered_runtime": runtime_layers(),
    }


def runtime_layers() -> dict[str, JsonValue]:
    """``layered_runtime``: our overrides (static), then an admin layer over them."""
    return {
        "layers": [
            {"name": "waypoint-overrides", "static_layer": dict(RUNTIME_OVERRIDES)},
            {"name": "admin", "admin_layer": {}},
        ]
    }


def bootstrap_yaml(options: BootstrapOptions) -> str:
    return yaml.safe_dump(bootstrap(options), sort_keys=False)


def _node(options: BootstrapOptions) -> dict[str, JsonValue]:
    account = options.service_account or options.name
    labels = {
        GATEWAY_NAME_LABEL: options.name,
        MANAGED_LABEL: "istio.io-mesh-controller",
        **options.extra_labels,
    }
    return {
        "id": options.node_id,
        "cluster": f"{account}.{options.namespace}",
        "metadata": {
            "NAMESPACE": options.namespace,
            "NAME": options.pod,
            "LABELS": labels,
            "INSTANCE_IPS": options.pod_ip,
            "CLUSTER_ID": options.cluster_id,
            "SERVICE_ACCOUNT": account,
            "WORKLOAD_NAME": options.name,
            "ISTIO_VERSION": ISTIO_VERSION,
        },
    }


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _static_cluster(name: str, host: str, port: int) -> dict[str, JsonValue]:
    return {
        "name": name,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": host, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }


def _xds_cluster(options: BootstrapOptions) -> dict[str, JsonValue]:
    cluster = _static_cluster(XDS_CLUSTER, options.xds_host, options.xds_port)
    http_options: dict[str, JsonValue] = {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {
            "http2_protocol_options": {
                # Notice a dead control plane connection within a minute.
                "connection_keepalive": {"interval": "30s", "timeout": "10s"}
            }
        },
    }
    if options.token_path is not None:
        http_options["http_filters"] = [_token_injector(options.token_path), _UPSTREAM_CODEC]
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http_options
    }
    cluster["upstream_connection_options"] = {"tcp_keepalive": {"keepalive_time": 300}}
    if options.ca_root_path is not None:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                "UpstreamTlsContext",
                # The certificate is checked against the service name, not the
                # address we dial, which is often an IP or a port-forward.
                "sni": options.server_name,
                "common_tls_context": {
                    "alpn_protocols": ["h2"],
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "validation_context": {
                        "trusted_ca": {"filename": options.ca_root_path},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": options.server_name}}
                        ],
                    },
                },
            },
        }
    return cluster


_UPSTREAM_CODEC: dict[str, JsonValue] = {
    "name": "envoy.filters.http.upstream_codec",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"
    },
}


def _token_injector(token_path: str) -> dict[str, JsonValue]:
    directory = posixpath.dirname(token_path)
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3."
            "CredentialInjector",
            "overwrite": True,
            "credential": {
                "name": "envoy.http.injected_credentials.generic",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.injected_credentials."
                    "generic.v3.Generic",
                    "header": "authorization",
                    "header_value_prefix": "Bearer ",
                    "credential": {
                        "name": TOKEN_SECRET,
                        "sds_config": {
                            "resource_api_version": "V3",
                            "path_config_source": {
                                "path": posixpath.join(directory, TOKEN_SDS_FILE),
                                "watched_directory": {"path": directory},
                            },
                        },
                    },
                },
            },
        },
    }


def token_sds_document(token_path: str) -> str:
    """The SDS file beside ``token_path``: a generic secret read from the token file."""
    return yaml.safe_dump(
        {
            "resources": [
                {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                    "name": TOKEN_SECRET,
                    "generic_secret": {"secret": {"filename": token_path}},
                }
            ]
        },
        sort_keys=False,
    )


def _admin_proxy_listener(name: str, port: int, path: str, admin_path: str) -> dict[str, JsonValue]:
    """A listener that exposes one admin endpoint (admin itself stays on loopback)."""
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                            "http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": name,
                            "route_config": {
                                "name": name,
                                "virtual_hosts": [
                                    {
                                        "name": name,
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"path": path},
                                                "route": {
                                                    "cluster": ADMIN_CLUSTER,
                                                    "prefix_rewrite": admin_path,
                                                },
                                            }
                                        ],
                                    }
                                ],
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters."
                                        "http.router.v3.Router"
                                    },
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
