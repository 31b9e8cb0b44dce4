"""Access logging on waypoints: Telemetry (most specific wins) or meshConfig.accessLogFile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translate.waypoint.fixtures import (
    REVIEWS,
    Doc,
    meta,
    shop,
    snapshot,
    to_waypoint,
    translate,
)
from xds import type_urls
from xds.model.mesh import FileAccessLogProvider, MeshConfig
from xds.translate.waypoint.access_log import ISTIO_TEXT_FORMAT

REQUESTS = FileAccessLogProvider("requests", "/var/log/requests.log", "%REQ(:PATH)%")


def _telemetry(namespace: str, name: str, *entries: Doc, target: Doc | None = None) -> Doc:
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": meta(namespace, name),
        "spec": {**(target or {}), "accessLogging": list(entries)},
    }


def _logs(*docs: Doc, config: MeshConfig | None = None) -> list[tuple[str, str]]:
    config = config or MeshConfig(access_log_providers=(REQUESTS,))
    listeners = snapshot(translate(*shop(), *docs, config=config))[type_urls.LISTENER]
    [chain] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == REVIEWS]
    manager: dict[str, Any] = chain["filters"][-1]["typed_config"]
    return [
        (
            log["typed_config"]["path"],
            log["typed_config"]["log_format"]["text_format_source"]["inline_string"],
        )
        for log in manager.get("access_log", [])
    ]


ROOT_ENVOY = _telemetry("istio-system", "mesh-default", {"providers": [{"name": "envoy"}]})
STDOUT = ("/dev/stdout", ISTIO_TEXT_FORMAT)


@pytest.mark.parametrize(
    ("docs", "config", "expected"),
    [
        pytest.param([], None, [], id="nothing"),
        pytest.param(
            [],
            MeshConfig(access_log_file="/dev/stdout"),
            [STDOUT],
            id="mesh-access-log-file",
        ),
        pytest.param(
            [],
            MeshConfig(access_log_file="/tmp/a.log", access_log_format="%DURATION%"),
            [("/tmp/a.log", "%DURATION%\n")],
            id="mesh-format-gets-its-newline",
        ),
        pytest.param([ROOT_ENVOY], None, [STDOUT], id="root-namespace-builtin-envoy"),
        pytest.param(
            [_telemetry("istio-system", "default", {})], None, [STDOUT], id="default-provider"
        ),
        pytest.param(
            [ROOT_ENVOY, _telemetry("shop", "quiet", {"disabled": True})],
            None,
            [],
            id="namespace-beats-root",
        ),
        pytest.param(
            [
                _telemetry("shop", "quiet", {"disabled": True}),
                _telemetry(
                    "shop",
                    "waypoint",
                    {"providers": [{"name": "requests"}, {"name": "unknown"}]},
                    target=to_waypoint(),
                ),
            ],
            None,
            [("/var/log/requests.log", "%REQ(:PATH)%\n")],
            id="waypoint-target-beats-namespace",
        ),
        pytest.param(
            [_telemetry("shop", "client", {"match": {"mode": "CLIENT"}})],
            None,
            [],
            id="client-side-only",
        ),
        pytest.param(
            [
                {
                    **_telemetry("shop", "pods", {}),
                    "spec": {"selector": {"matchLabels": {"app": "x"}}, "accessLogging": [{}]},
                }
            ],
            None,
            [],
            id="selector-telemetry-is-for-workloads",
        ),
    ],
)
def test_access_logs(docs: list[Doc], config: MeshConfig | None, expected: list[Any]) -> None:
    assert _logs(*docs, config=config) == expected


def test_tcp_chains_log_connections_too() -> None:
    listeners = snapshot(translate(*shop(), ROOT_ENVOY, config=MeshConfig()))[type_urls.LISTENER]
    [chain] = [
        c
        for c in listeners["main_internal"]["filter_chains"]
        if c["name"] == "inbound-vip|5432|tcp|db.shop.svc.cluster.local"
    ]
    proxy = chain["filters"][-1]["typed_config"]
    assert [log["typed_config"]["path"] for log in proxy["access_log"]] == ["/dev/stdout"]


def _tracing(*docs: Doc) -> Any:
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [chain] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == REVIEWS]
    return chain["filters"][-1]["typed_config"].get("tracing")


def test_trace_sampling_from_the_most_specific_telemetry() -> None:
    def sampling(namespace: str, name: str, percent: float, target: Doc | None = None) -> Doc:
        doc = _telemetry(namespace, name, target=target)
        doc["spec"] = {**doc["spec"], "tracing": [{"randomSamplingPercentage": percent}]}
        return doc

    assert _tracing() is None
    mesh_wide = sampling("istio-system", "mesh", 10)
    assert _tracing(mesh_wide) == {
        "client_sampling": {"value": 100.0},
        "random_sampling": {"value": 10.0},
        "overall_sampling": {"value": 100.0},
    }
    off = sampling("shop", "waypoint", 0, target=to_waypoint())
    assert _tracing(mesh_wide, off)["random_sampling"] == {}  # 0 %, set
