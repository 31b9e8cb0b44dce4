"""The stock-Envoy waypoint bootstrap and ``xds bootstrap waypoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.translate.waypoint.envoy_static import ENVOY, make_certificates, validate
from xds.cli import main
from xds.plane.scopes import gateway_of
from xds.resources import waypoint_scope
from xds.serving.node import ProxyType, parse_node_id
from xds.translate.waypoint.bootstrap import (
    TOKEN_SDS_FILE,
    BootstrapOptions,
    bootstrap,
    token_sds_document,
)

BASE = BootstrapOptions(
    namespace="bookinfo",
    name="waypoint",
    xds_host="10.0.0.2",
    xds_port=15012,
    pod_ip="10.244.2.20",
    pod_name="waypoint-7b68-q5dvz",
)


def test_the_node_tells_the_server_which_waypoint_it_is() -> None:
    node = bootstrap(BASE)["node"]
    assert (
        node["id"] == "waypoint~10.244.2.20~waypoint-7b68-q5dvz.bookinfo~bookinfo.svc.cluster.local"
    )
    assert node["cluster"] == "waypoint.bookinfo"
    assert node["metadata"]["NAMESPACE"] == "bookinfo"
    assert node["metadata"]["INSTANCE_IPS"] == "10.244.2.20"
    # What istioctl proxy-status shows as the proxy's VERSION.
    assert node["metadata"]["ISTIO_VERSION"] == "1.31.0"
    # The server's own parsing finds the scope the translator fills.
    parsed = parse_node_id(node["id"], node["metadata"])
    assert parsed.type is ProxyType.WAYPOINT
    assert waypoint_scope(parsed.namespace, gateway_of(parsed)) == waypoint_scope(
        "bookinfo", "waypoint"
    )


def test_ads_and_the_internal_listener_extension() -> None:
    config = bootstrap(BASE)
    ads = config["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC"
    assert ads["grpc_services"] == [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]
    assert config["dynamic_resources"]["cds_config"]["ads"] == {}
    assert config["dynamic_resources"]["lds_config"]["ads"] == {}
    assert [e["name"] for e in config["bootstrap_extensions"]] == [
        "envoy.bootstrap.internal_listener"
    ]
    assert config["admin"]["address"]["socket_address"] == {
        "address": "127.0.0.1",
        "port_value": 15000,
    }
    sotw = bootstrap(BootstrapOptions(**{**BASE.__dict__, "delta": False}))
    assert sotw["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"


def _xds_cluster(config: dict[str, Any]) -> dict[str, Any]:
    [cluster] = [c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    return cluster


def test_tls_verifies_the_service_name_and_sends_the_token() -> None:
    options = BootstrapOptions(**{**BASE.__dict__, "token": "abc", "ca_root_path": "/ca.pem"})
    config = bootstrap(options)
    cluster = _xds_cluster(config)
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "istiod.istio-system.svc"
    assert tls["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": "/ca.pem"},
        "match_typed_subject_alt_names": [
            {"san_type": "DNS", "matcher": {"exact": "istiod.istio-system.svc"}}
        ],
    }
    assert config["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"] == [
        {"key": "authorization", "value": "Bearer abc"}
    ]


@pytest.mark.parametrize(
    ("host", "kind"),
    [("10.0.0.2", "STATIC"), ("::1", "STATIC"), ("istiod.istio-system.svc", "STRICT_DNS")],
)
def test_the_control_plane_may_be_an_address_or_a_name(host: str, kind: str) -> None:
    cluster = _xds_cluster(bootstrap(BootstrapOptions(**{**BASE.__dict__, "xds_host": host})))
    assert cluster["type"] == kind
    assert "transport_socket" not in cluster  # no CA root: plaintext


def _run(argv: list[str]) -> int:
    """``xds`` itself, in this process: the one dispatch and error convention."""
    return main(argv)


REQUIRED = ["bootstrap", "waypoint", "--namespace", "bookinfo", "--name", "waypoint"]


def test_cli_writes_a_bootstrap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    code = _run(
        [
            *REQUIRED,
            "--xds-address",
            "istiod.istio-system.svc:15012",
            "--pod-ip",
            "10.1.2.3",
            "--pod-name",
            "wp-1",
            "--token-file",
            str(token),
            "--ca-root",
            str(ca),
            "--sotw",
            "--admin-port",
            "19000",
        ]
    )
    assert code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["node"]["id"] == "waypoint~10.1.2.3~wp-1.bookinfo~bookinfo.svc.cluster.local"
    assert config["dynamic_resources"]["ads_config"]["api_type"] == "GRPC"
    assert config["dynamic_resources"]["ads_config"]["grpc_services"][0]["initial_metadata"] == [
        {"key": "authorization", "value": "Bearer secret-token"}
    ]
    assert config["admin"]["address"]["socket_address"]["port_value"] == 19000
    cluster = _xds_cluster(config)
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"
    ] == {"address": "istiod.istio-system.svc", "port_value": 15012}


@pytest.mark.parametrize(
    "argv",
    [
        [*REQUIRED, "--xds-address", "no-port"],
        [*REQUIRED, "--xds-address", "host:99999"],
        [*REQUIRED, "--xds-address", "h:1", "--pod-ip", "not-an-ip"],
        [*REQUIRED, "--xds-address", "h:1", "--delta", "--sotw"],
        ["bootstrap", "waypoint", "--name", "waypoint", "--xds-address", "h:1"],
    ],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xds bootstrap waypoint: usage error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-token", "cannot read"),
        ("empty-token", "is empty"),
        ("missing-ca", "does not exist"),
    ],
)
def test_cli_runtime_failures_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, message: str
) -> None:
    token = tmp_path / "token"
    argv = [*REQUIRED, "--xds-address", "h:1"]
    if setup == "missing-token":
        argv += ["--token-file", str(token)]
    elif setup == "empty-token":
        token.write_text("\n")
        argv += ["--token-file", str(token)]
    else:
        argv += ["--ca-root", str(tmp_path / "nope.pem")]
    assert _run(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.envoy
def test_envoy_accepts_the_bootstraps(tmp_path: Path) -> None:
    assert ENVOY.exists()
    certs = make_certificates(tmp_path / "certs", "spiffe://cluster.local/ns/bookinfo/sa/x")
    configs = {
        "plaintext": bootstrap(BASE),
        "tls": bootstrap(
            BootstrapOptions(
                **{
                    **BASE.__dict__,
                    "token": "t",
                    "delta": False,
                    "ca_root_path": str(certs.ca),
                    "xds_host": "istiod.istio-system.svc",
                }
            )
        ),
        "bare": bootstrap(
            BootstrapOptions(**{**BASE.__dict__, "readiness_port": 0, "prometheus_port": 0})
        ),
        "rotating-token": bootstrap(
            BootstrapOptions(
                **{
                    **BASE.__dict__,
                    "token_path": str(tmp_path / "tokens" / "istio-token"),
                    "ca_root_path": str(certs.ca),
                }
            )
        ),
    }
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "istio-token").write_text("t")
    (tmp_path / "tokens" / TOKEN_SDS_FILE).write_text(
        token_sds_document(str(tmp_path / "tokens" / "istio-token"))
    )
    failures = [
        f"{r.name}: {r.output[-2000:]}"
        for r in validate(configs, tmp_path / "out")
        if r.returncode != 0
    ]
    assert not failures, "\n".join(failures)


def test_runtime_keeps_bytes_written_before_a_close() -> None:
    # Why: bootstrap.RUNTIME_OVERRIDES (live proof in test_envoy_live). The
    # admin layer comes last so /runtime_modify can still change anything.
    layers = bootstrap(BASE)["layered_runtime"]["layers"]
    assert layers[0]["static_layer"] == {
        "envoy.reloadable_features.enable_send_rst_on_user_space_socket": False
    }
    assert layers[-1] == {"name": "admin", "admin_layer": {}}


def test_a_token_path_is_injected_per_stream_and_followed_on_rotation() -> None:
    # Why: Envoy's initial_metadata is fixed at start, and a projected token rotates; the
    # upstream credential injector reads the file-backed SDS secret again on every change
    # of the directory (the kubelet's atomic swap), so each new stream carries the current
    # token. Live proof: tests/e2e/test_kubernetes_waypoints.py.
    config = bootstrap(
        BootstrapOptions(
            **{**BASE.__dict__, "token_path": "/var/t/istio-token", "ca_root_path": "/r/root.pem"}
        )
    )
    ads = config["dynamic_resources"]["ads_config"]["grpc_services"][0]
    assert "initial_metadata" not in ads
    [xds] = [c for c in config["static_resources"]["clusters"] if c["name"] == "xds-grpc"]
    options = xds["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    injector, codec = options["http_filters"]
    assert codec["name"] == "envoy.filters.http.upstream_codec"
    generic = injector["typed_config"]["credential"]["typed_config"]
    assert generic["header_value_prefix"] == "Bearer "
    source = generic["credential"]["sds_config"]["path_config_source"]
    assert source == {"path": f"/var/t/{TOKEN_SDS_FILE}", "watched_directory": {"path": "/var/t"}}
    document = yaml.safe_load(token_sds_document("/var/t/istio-token"))
    assert document["resources"][0]["generic_secret"] == {
        "secret": {"filename": "/var/t/istio-token"}
    }
    with pytest.raises(ValueError):
        BootstrapOptions(**{**BASE.__dict__, "token": "x", "token_path": "/t"})
