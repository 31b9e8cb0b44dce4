"""Fields of Istio and Gateway API objects that the model does not read are listed, so a
user hears that a setting has no effect here instead of it being dropped silently."""

from __future__ import annotations

import pytest
import yaml

from xds.model.parse import parse_with_notes

CASES = [
    pytest.param(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: r, namespace: ns, labels: {a: b}, uid: x}
        spec:
          host: reviews
          trafficPolicy:
            loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 10s}
            proxyProtocol: {version: V1}
          subsets: [{name: v1, labels: {version: v1}}]
        """,
        (
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
            "spec.trafficPolicy.proxyProtocol",
        ),
        id="unread-sections-and-fields",
    ),
    pytest.param(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: v, namespace: ns}
        spec:
          hosts: [reviews]
          http:
          - match: [{uri: {prefix: /a}, statPrefix: x}]
            route: [{destination: {host: reviews}}]
            directResponse: {status: 204}
          tcp: [{route: [{destination: {host: reviews}}]}]
        """,
        (
            "spec.http[0].match[0].statPrefix",
            "spec.http[0].directResponse",
            "spec.tcp",
        ),
        id="inside-lists",
    ),
    pytest.param(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: r, namespace: ns}
        spec:
          host: reviews
          exportTo: ["."]
          trafficPolicy: {tls: {mode: SIMPLE, sni: api.example.com, credentialName: api-ca}}
          subsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]
        """,
        ("spec.exportTo",),
        id="destination-rule-export-to-is-reported",
    ),
    pytest.param(
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: GatewayClass
        metadata: {name: istio-waypoint}
        spec: {controllerName: istio.io/mesh-controller, description: for people}
        """,
        (),
        id="harmless-fields-are-skipped",
    ),
    pytest.param(
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: waypoint, namespace: ns}
        spec:
          gatewayClassName: istio-waypoint
          listeners: [{name: mesh, port: 15008, protocol: HBONE}]
          infrastructure: {labels: {team: a}}
        """,
        (),
        id="fields-read-elsewhere-are-skipped",
    ),
    pytest.param(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: p, namespace: ns}
        spec: {containers: [{name: c, image: x}], nodeName: n}
        """,
        (),
        id="core-kinds-are-read-in-part-by-design",
    ),
    pytest.param(
        """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: p, namespace: ns}
        spec:
          action: ALLOW
          rules: [{from: [{source: {principals: [a], notRequestPrincipals: null}}]}]
        """,
        (),
        id="null-values-are-absent",
    ),
]


@pytest.mark.parametrize(("text", "ignored"), CASES)
def test_unread_spec_fields_are_listed(text: str, ignored: tuple[str, ...]) -> None:
    obj, found = parse_with_notes(yaml.safe_load(text))
    assert obj is not None
    assert found == ignored
