"""AuthorizationPolicy → istio.security.Authorization, whole messages.

Modelled on upstream TestRBACConvert (allow-full, allow-groups, deny-groups),
TestConvertAuthorizationPolicyStatus and TestAmbientIndex_Policy (ambient-index
§6.1-§6.5), with our own fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf.empty_pb2 import Empty

from tests.translate.ztunnel.fixtures import assert_proto, ip, translate
from xds.proto.istio.security import authorization_pb2 as authz


def policy(spec: str, *, name: str = "pol", namespace: str = "ns1", meta: str = "") -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {namespace}{meta}}}
spec: {spec}
"""


def exact(value: str) -> authz.StringMatch:
    return authz.StringMatch(exact=value)


PRESENCE = authz.StringMatch(presence=Empty())


def rule(*clauses: list[authz.Match]) -> authz.Rule:
    return authz.Rule(clauses=[authz.Clause(matches=matches) for matches in clauses])


def auth(
    *rules: authz.Rule,
    name: str = "pol",
    namespace: str = "ns1",
    scope: int = authz.NAMESPACE,
    action: int = authz.ALLOW,
) -> authz.Authorization:
    return authz.Authorization(
        name=name,
        namespace=namespace,
        scope=scope,  # type: ignore[arg-type]
        action=action,
        rules=list(rules),
    )  # type: ignore[arg-type]


@dataclass
class Case:
    id: str
    manifests: str
    expected: authz.Authorization | None
    name: str = "ns1/pol"


CASES = [
    Case(
        "principals and string match forms",
        policy("""
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/a/sa/b, "prefix-*", "*-suffix", "*"]
        notPrincipals: [spiffe://cluster.local/ns/x/sa/y]
"""),
        auth(
            rule(
                [
                    authz.Match(
                        principals=[
                            exact("cluster.local/ns/a/sa/b"),
                            authz.StringMatch(prefix="prefix-"),
                            authz.StringMatch(suffix="-suffix"),
                            PRESENCE,
                        ],
                        not_principals=[exact("spiffe://cluster.local/ns/x/sa/y")],
                    )
                ]
            )
        ),
    ),
    Case(
        "service accounts default to the policy namespace",
        policy("""
  rules:
  - from:
    - source: {serviceAccounts: [other/sa1, sa2], notServiceAccounts: [sa3]}
"""),
        auth(
            rule(
                [
                    authz.Match(
                        service_accounts=[
                            authz.ServiceAccountMatch(namespace="other", serviceAccount="sa1"),
                            authz.ServiceAccountMatch(namespace="ns1", serviceAccount="sa2"),
                        ],
                        not_service_accounts=[
                            authz.ServiceAccountMatch(namespace="ns1", serviceAccount="sa3")
                        ],
                    )
                ]
            )
        ),
    ),
    Case(
        "ip blocks: hosts get full length, CIDRs kept as written, junk dropped",
        policy("""
  rules:
  - from:
    - source:
        ipBlocks: [1.2.3.4, 10.1.2.3/8, "fd00::/64", not-an-ip, 1.2.3.4/33]
        notIpBlocks: ["fd00::1"]
"""),
        auth(
            rule(
                [
                    authz.Match(
                        source_ips=[
                            authz.Address(address=ip("1.2.3.4"), length=32),
                            authz.Address(address=ip("10.1.2.3"), length=8),
                            authz.Address(address=ip("fd00::"), length=64),
                        ],
                        not_source_ips=[authz.Address(address=ip("fd00::1"), length=128)],
                    )
                ]
            )
        ),
    ),
    Case(
        "to and from are separate AND-ed clauses; bad ports dropped",
        policy("""
  rules:
  - to:
    - operation: {ports: ["80", http, "70000"], notPorts: ["8080"]}
    - operation: {ports: ["443"]}
    from:
    - source: {namespaces: [ns-a, "ns-*"]}
    - source: {notNamespaces: ["*"]}
"""),
        auth(
            rule(
                [
                    authz.Match(destination_ports=[80], not_destination_ports=[8080]),
                    authz.Match(destination_ports=[443]),
                ],
                [
                    authz.Match(namespaces=[exact("ns-a"), authz.StringMatch(prefix="ns-")]),
                    authz.Match(not_namespaces=[PRESENCE]),
                ],
            )
        ),
    ),
    Case(
        "each L4 condition is its own clause",
        policy("""
  rules:
  - when:
    - {key: source.ip, values: [10.0.0.0/8], notValues: [10.1.1.1]}
    - {key: destination.port, values: ["9090"]}
    - {key: source.principal, notValues: ["*"]}
    - {key: destination.ip, values: [192.168.1.1]}
    - {key: source.namespace, values: [foo]}
"""),
        auth(
            rule(
                [
                    authz.Match(
                        source_ips=[authz.Address(address=ip("10.0.0.0"), length=8)],
                        not_source_ips=[authz.Address(address=ip("10.1.1.1"), length=32)],
                    )
                ],
                [authz.Match(destination_ports=[9090])],
                [authz.Match(not_principals=[PRESENCE])],
                [
                    authz.Match(
                        destination_ips=[authz.Address(address=ip("192.168.1.1"), length=32)]
                    )
                ],
                [authz.Match(namespaces=[exact("foo")])],
            )
        ),
    ),
    Case(
        "ALLOW rules with HTTP attributes are dropped, the rest kept",
        policy("""
  rules:
  - to: [{operation: {methods: [GET], ports: ["80"]}}]
  - from: [{source: {requestPrincipals: ["*"]}}]
  - when: [{key: "request.headers[x]", values: [y]}]
  - from: [{source: {principals: [a]}}]
"""),
        auth(rule([authz.Match(principals=[exact("a")])])),
    ),
    Case(
        "ALLOW policy whose rules all use HTTP attributes matches nothing",
        policy("""
  rules:
  - to: [{operation: {paths: [/admin]}}]
"""),
        auth(),
    ),
    Case("an empty rule matches everything", policy("{rules: [{}]}"), auth(authz.Rule())),
    Case(
        "DENY keeps L4 parts and leaves empty matches for HTTP-only parts",
        policy("""
  action: DENY
  rules:
  - from: [{source: {principals: [p], requestPrincipals: [r]}}]
    to: [{operation: {ports: ["80"], methods: [GET]}}]
  - from: [{source: {requestPrincipals: [r]}}]
  - when:
    - {key: source.namespace, values: [n]}
    - {key: connection.sni, values: [s]}
"""),
        auth(
            rule([authz.Match(destination_ports=[80])], [authz.Match(principals=[exact("p")])]),
            rule([authz.Match()]),
            rule([authz.Match(namespaces=[exact("n")])], [authz.Match()]),
            action=authz.DENY,
        ),
    ),
    Case(
        "selector gives workload scope",
        policy("{selector: {matchLabels: {app: a}}}"),
        auth(scope=authz.WORKLOAD_SELECTOR),
    ),
    Case(
        "empty selector is still workload scope",
        policy("{selector: {}}"),
        auth(scope=authz.WORKLOAD_SELECTOR),
    ),
    Case(
        "root namespace without selector is global",
        policy("{action: DENY, rules: [{}]}", namespace="istio-system"),
        auth(authz.Rule(), namespace="istio-system", scope=authz.GLOBAL, action=authz.DENY),
        "istio-system/pol",
    ),
    Case(
        "targetRef policies belong to waypoints",
        policy("{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]}"),
        None,
    ),
    Case("AUDIT is not sent", policy("{action: AUDIT, rules: [{}]}"), None),
    Case(
        "CUSTOM is not sent", policy("{action: CUSTOM, provider: {name: ext}, rules: [{}]}"), None
    ),
    Case(
        "dry-run is not sent",
        policy("{rules: [{}]}", meta=", annotations: {istio.io/dry-run: 'true'}"),
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_authorization(case: Case) -> None:
    output = translate(case.manifests)
    if case.expected is None:
        assert output.authorizations == {}
        return
    assert set(output.authorizations) == {case.name}
    assert_proto(output.authorization(case.name), case.expected)


def test_workload_lists_selecting_policies_sorted_then_peer_authentication() -> None:
    output = translate(
        policy("{selector: {matchLabels: {app: a}}}", name="z-local")
        + policy("{selector: {matchLabels: {app: a}}}", name="a-global", namespace="istio-system")
        + policy("{selector: {matchLabels: {app: b}}}", name="not-me")
        + policy("{selector: {}}", name="empty-selector")
        + policy("{rules: [{}]}", name="namespace-wide")
        + policy(
            "{selector: {matchLabels: {app: a}}, targetRef: {kind: Service, name: s}}",
            name="waypoint-only",
        )
        + policy("{selector: {matchLabels: {app: a}}}", name="elsewhere", namespace="ns2")
        + """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Pod
metadata: {name: pod1, namespace: ns1, labels: {app: a}}
status: {phase: Running, podIP: 10.0.0.1}
"""
    )
    assert list(output.workload("cluster0//Pod/ns1/pod1").authorization_policies) == [
        "istio-system/a-global",
        "ns1/z-local",
        "istio-system/istio_converted_static_strict",
    ]
