"""Property-based fuzzing (hypothesis), bounded to a few seconds each for CI.

- the manifest parser: any JSON-like document gives a model object, ``None``, or a
  ``ManifestError`` naming it; nothing else escapes;
- the translators: whatever the parser accepts, added to the demo mesh, translates
  without raising;
- the Delta and SotW sessions: any sequence of requests either is answered with
  responses that decode as Envoy's messages, or ends the stream with ``ProtocolError``
  or ``Forbidden``.

A failing example is printed by hypothesis; keep it as a regression case beside the
property (``@example``).
"""

from __future__ import annotations

from typing import Any

from envoy.service.discovery.v3 import discovery_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xds.model import ManifestError, parse_object
from xds.model.mesh import MeshConfig, MeshStore
from xds.model.meta import KubeObject
from xds.plane.app import default_translators
from xds.plane.pipeline import Pipeline
from xds.serving.delta import DeltaSession
from xds.serving.session import Forbidden, ProtocolError
from xds.serving.sotw import SotwSession
from xds.serving.store import ConfigStore
from xds.sources.files import load_directory
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, LISTENER

from ..serving.conftest import workload

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-70_000, 70_000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "10.0.0.1",
            "fd00::1",
            "80",
            "http",
            "TCP",
            "HBONE",
            "ALLOW",
            "DENY",
            "STRICT",
            "default",
            "app",
            "v1",
            "5s",
            "*",
            "/",
            "istio-waypoint",
        ]
    )
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=12)
            | st.sampled_from(
                [
                    "name",
                    "namespace",
                    "labels",
                    "ports",
                    "port",
                    "selector",
                    "rules",
                    "from",
                    "to",
                    "hosts",
                    "addresses",
                    "parentRefs",
                    "backendRefs",
                    "listeners",
                    "protocol",
                    "action",
                    "mtls",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)
_KINDS = [
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "WorkloadEntry"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
]


@st.composite
def documents(draw: st.DrawFn) -> object:
    if draw(st.booleans()):
        return draw(_values)
    api_version, kind = draw(st.sampled_from(_KINDS))
    metadata = draw(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "web", "x-1"]) | st.text(max_size=8)},
            optional={
                "namespace": st.sampled_from(["default", "bookinfo"]),
                "labels": st.dictionaries(
                    st.sampled_from(["app", "istio.io/use-waypoint"]),
                    st.text(max_size=8),
                    max_size=2,
                ),
            },
        )
    )
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "spec": draw(_values),
        "status": draw(_values),
    }


def _parsed(document: object) -> KubeObject | None:
    try:
        return parse_object(document)
    except ManifestError as error:
        assert str(error)  # it names what is wrong
        return None


@FAST
@given(documents())
def test_the_parser_only_ever_answers_or_names_the_problem(document: object) -> None:
    obj = _parsed(document)
    assert obj is None or isinstance(obj, KubeObject)


_DEMO: list[KubeObject] | None = None


def _demo() -> list[KubeObject]:
    global _DEMO
    if _DEMO is None:
        from xds.sources.demo import demo_directory

        _DEMO, errors = load_directory(demo_directory())
        assert not errors
    return _DEMO


@FAST
@given(st.lists(documents(), max_size=6))
def test_whatever_parses_translates(documents_: list[object]) -> None:
    extra = [obj for obj in map(_parsed, documents_) if obj is not None]
    mesh = MeshStore(MeshConfig())
    mesh.apply([*_demo(), *extra])
    store = ConfigStore()
    Pipeline(mesh, store, default_translators(MeshConfig())).rebuild(None)
    assert store.scopes()


_TYPES = [ADDRESS, AUTHORIZATION, CLUSTER, LISTENER, ""]
_NAMES = st.lists(
    st.sampled_from(
        [
            "*",
            "Kubernetes//Pod/default/a",
            "/10.0.0.1",
            "nope",
            "default/web.default.svc.cluster.local",
            "",
        ]
    ),
    max_size=3,
)


@st.composite
def delta_requests(draw: st.DrawFn) -> list[Any]:
    requests = []
    for _ in range(draw(st.integers(1, 6))):
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=draw(st.sampled_from(_TYPES)),
            resource_names_subscribe=draw(_NAMES),
            resource_names_unsubscribe=draw(_NAMES),
            response_nonce=draw(st.sampled_from(["", "1", "2", "zzz"])),
        )
        for name in draw(_NAMES):
            request.initial_resource_versions[name] = draw(st.sampled_from(["", "v", "x"]))
        if draw(st.booleans()):
            request.error_detail.message = "nack"
        requests.append(request)
    return requests


def _store() -> ConfigStore:
    store = ConfigStore()
    store.upsert("s", [workload("a"), workload("b", b"\x0a\x00\x00\x02")])
    store.commit()
    return store


@FAST
@given(delta_requests())
def test_delta_sessions_answer_or_end_cleanly(requests: list[Any]) -> None:
    store = _store()
    session = DeltaSession(store.view("s"))
    try:
        for request in requests:
            _, responses = session.receive(request)
            for response in responses:
                discovery_pb2.DeltaDiscoveryResponse.FromString(response.encode())
        store.upsert("s", [workload("a", revision="v2")])
        for response in session.push(store.commit()["s"]):
            discovery_pb2.DeltaDiscoveryResponse.FromString(response.encode())
    except (ProtocolError, Forbidden):
        pass


@FAST
@given(
    st.lists(
        st.builds(
            discovery_pb2.DiscoveryRequest,
            type_url=st.sampled_from(_TYPES),
            resource_names=_NAMES,
            version_info=st.sampled_from(["", "1", "x"]),
            response_nonce=st.sampled_from(["", "1", "2", "zzz"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_sotw_sessions_answer_or_end_cleanly(requests: list[Any]) -> None:
    store = _store()
    session = SotwSession(store.view("s"))
    try:
        for request in requests:
            _, responses = session.receive(request)
            for response in responses:
                discovery_pb2.DiscoveryResponse.FromString(response.encode())
    except (ProtocolError, Forbidden):
        pass
