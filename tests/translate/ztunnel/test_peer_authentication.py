"""PeerAuthentication → synthetic DENY policies and workload references, whole messages.

The cases follow upstream's TestRBACConvert golden files (peer-authn-*.yaml),
TestAmbientIndex_Policy and TestAmbientIndex_PeerAuthenticationNamespacePolicyChange
(ambient-index §6.4), plus the three upstream quirks we deliberately fix
(see xds/translate/ztunnel/peer_authentication.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from google.protobuf.empty_pb2 import Empty

from tests.translate.ztunnel.fixtures import assert_proto, translate
from xds.proto.istio.security import authorization_pb2 as authz

STATIC = "istio-system/istio_converted_static_strict"
CONVERTED = "foo/converted_peer_authentication_workload"

POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: pod1, namespace: foo, labels: {app: a}}
status: {phase: Running, podIP: 10.0.0.1}
"""


def pa(
    name: str,
    namespace: str,
    mode: str | None = None,
    ports: dict[int, str] | None = None,
    selector: bool = False,
    created: str = "2026-01-01T00:00:00Z",
) -> str:
    spec = []
    if selector:
        spec.append("selector: {matchLabels: {app: a}}")
    if mode is not None:
        spec.append(f"mtls: {{mode: {mode}}}")
    if ports:
        entries = ", ".join(f"'{port}': {{mode: {m}}}" for port, m in ports.items())
        spec.append(f"portLevelMtls: {{{entries}}}")
    return f"""
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: '{created}'}}
spec: {{{", ".join(spec)}}}
"""


def workload(mode: str | None = None, ports: dict[int, str] | None = None) -> str:
    return pa("workload", "foo", mode, ports, selector=True)


def no_identity(port: int | None = None) -> authz.Match:
    match = authz.Match(not_principals=[authz.StringMatch(presence=Empty())])
    if port is not None:
        match.destination_ports.append(port)
    return match


def not_port(port: int) -> authz.Match:
    return authz.Match(not_destination_ports=[port])


def converted(*rules: list[authz.Match]) -> authz.Authorization:
    """Each argument is one Rule given as its clauses, one Match per clause."""
    return authz.Authorization(
        name="converted_peer_authentication_workload",
        namespace="foo",
        scope=authz.WORKLOAD_SELECTOR,
        action=authz.DENY,
        rules=[
            authz.Rule(clauses=[authz.Clause(matches=[m]) for m in clauses]) for clauses in rules
        ],
    )


@dataclass
class Case:
    id: str
    manifests: str
    converted: authz.Authorization | None
    keys: list[str]


CASES = [
    Case("namespace STRICT: static policy only", pa("default", "foo", "STRICT"), None, [STATIC]),
    Case("namespace PERMISSIVE", pa("default", "foo", "PERMISSIVE"), None, []),
    Case("namespace DISABLE", pa("default", "foo", "DISABLE"), None, []),
    Case("workload STRICT without ports", workload("STRICT"), None, [STATIC]),
    Case(
        "mesh STRICT, workload PERMISSIVE",
        pa("default", "istio-system", "STRICT") + workload("PERMISSIVE"),
        None,
        [],
    ),
    Case(
        "STRICT with a STRICT port is plain STRICT",
        workload("STRICT", {9090: "STRICT"}),
        None,
        [STATIC],
    ),
    Case(
        "STRICT with a PERMISSIVE port",
        workload("STRICT", {9090: "PERMISSIVE"}),
        converted([no_identity(), not_port(9090)]),
        [CONVERTED],
    ),
    Case(
        "STRICT with a DISABLE port",
        workload("STRICT", {9090: "DISABLE"}),
        converted([no_identity(), not_port(9090)]),
        [CONVERTED],
    ),
    Case(
        "PERMISSIVE with STRICT and PERMISSIVE ports",
        workload("PERMISSIVE", {9090: "STRICT", 8080: "PERMISSIVE"}),
        converted([no_identity(9090)]),
        [CONVERTED],
    ),
    Case(
        "DISABLE with a STRICT port",
        workload("DISABLE", {9090: "STRICT"}),
        converted([no_identity(9090)]),
        [CONVERTED],
    ),
    Case(
        "UNSET with a STRICT port and no parents",
        workload("UNSET", {8080: "STRICT"}),
        converted([no_identity(8080)]),
        [CONVERTED],
    ),
    Case(
        "STRICT ports become one rule each, in port order",
        workload("PERMISSIVE", {9090: "STRICT", 8080: "STRICT"}),
        converted([no_identity(8080)], [no_identity(9090)]),
        [CONVERTED],
    ),
    Case(
        "mesh STRICT, workload UNSET with PERMISSIVE and STRICT ports",
        pa("default-mesh", "istio-system", "STRICT")
        + workload(ports={9090: "PERMISSIVE", 8080: "STRICT"}),
        converted([not_port(9090), no_identity()]),
        [CONVERTED],
    ),
    Case(
        "mesh PERMISSIVE, namespace UNSET, workload mixed ports",
        pa("default-mesh", "istio-system", "PERMISSIVE")
        + pa("default-foo", "foo", "UNSET")
        + workload(ports={9090: "STRICT", 8080: "PERMISSIVE"}),
        converted([no_identity(9090)]),
        [CONVERTED],
    ),
    Case(
        "mesh PERMISSIVE, namespace STRICT, workload PERMISSIVE port",
        pa("default-mesh", "istio-system", "PERMISSIVE")
        + pa("default-foo", "foo", "STRICT")
        + workload(ports={9090: "PERMISSIVE"}),
        converted([not_port(9090), no_identity()]),
        [CONVERTED],
    ),
    Case(
        "mesh STRICT, namespace PERMISSIVE, workload STRICT port",
        pa("default-mesh", "istio-system", "STRICT")
        + pa("default-foo", "foo", "PERMISSIVE")
        + workload(ports={9090: "STRICT"}),
        converted([no_identity(9090)]),
        [CONVERTED],
    ),
    Case(
        "mesh STRICT, namespace STRICT, workload STRICT port needs nothing",
        pa("default-mesh", "istio-system", "STRICT")
        + pa("default-foo", "foo", "STRICT")
        + workload(ports={9090: "STRICT"}),
        None,
        [STATIC],
    ),
    Case(
        "root namespace selector policies are ignored",
        pa("selected", "istio-system", "STRICT", selector=True),
        None,
        [],
    ),
    Case(
        "oldest namespace policy wins",
        pa("newer", "foo", "PERMISSIVE", created="2026-03-01T00:00:00Z")
        + pa("older", "foo", "STRICT", created="2026-02-01T00:00:00Z"),
        None,
        [STATIC],
    ),
    # Quirk (i): a DISABLE port under an inherited STRICT is exempted like PERMISSIVE.
    Case(
        "fixed: inherited STRICT with a DISABLE port",
        pa("default-mesh", "istio-system", "STRICT") + workload(ports={9090: "DISABLE"}),
        converted([not_port(9090), no_identity()]),
        [CONVERTED],
    ),
    # Quirk (ii): the STRICT port of a PERMISSIVE workload is enforced under a STRICT mesh.
    Case(
        "fixed: PERMISSIVE workload with STRICT port under STRICT mesh",
        pa("default-mesh", "istio-system", "STRICT") + workload("PERMISSIVE", {9090: "STRICT"}),
        converted([no_identity(9090)]),
        [CONVERTED],
    ),
    # Quirk (iii): an UNSET namespace policy inherits the mesh's STRICT in the conversion.
    Case(
        "fixed: UNSET namespace policy under STRICT mesh, PERMISSIVE port",
        pa("default-mesh", "istio-system", "STRICT")
        + pa("default-foo", "foo", "UNSET")
        + workload(ports={9090: "PERMISSIVE"}),
        converted([not_port(9090), no_identity()]),
        [CONVERTED],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_peer_authentication(case: Case) -> None:
    output = translate(case.manifests + POD)
    expected_names = {STATIC} | ({CONVERTED} if case.converted is not None else set())
    assert set(output.authorizations) == expected_names
    assert_proto(
        output.authorization(STATIC),
        authz.Authorization(
            name="istio_converted_static_strict",
            namespace="istio-system",
            scope=authz.WORKLOAD_SELECTOR,
            action=authz.DENY,
            rules=[authz.Rule(clauses=[authz.Clause(matches=[no_identity()])])],
        ),
    )
    if case.converted is not None:
        assert_proto(output.authorization(CONVERTED), case.converted)
    assert list(output.workload("cluster0//Pod/foo/pod1").authorization_policies) == case.keys


def test_every_referenced_policy_exists() -> None:
    """The invariant the upstream quirks break: no workload may reference a policy that is
    not sent, for any combination of parent and workload modes."""
    modes = ["STRICT", "PERMISSIVE", "DISABLE", "UNSET"]
    for root_mode in [None, *modes]:
        for namespace_mode in [None, *modes]:
            for workload_mode in modes:
                for port_mode in modes:
                    manifests = POD + workload(workload_mode, {9090: port_mode})
                    if root_mode:
                        manifests += pa("mesh", "istio-system", root_mode)
                    if namespace_mode:
                        manifests += pa("ns", "foo", namespace_mode)
                    output = translate(manifests)
                    keys = output.workload("cluster0//Pod/foo/pod1").authorization_policies
                    assert set(keys) <= set(output.authorizations), (
                        root_mode,
                        namespace_mode,
                        workload_mode,
                        port_mode,
                    )


def test_no_peer_authentication_means_no_static_policy() -> None:
    assert translate(POD).authorizations == {}
