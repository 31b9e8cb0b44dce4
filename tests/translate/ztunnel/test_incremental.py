"""Incremental translation: a change recomputes and sends only what it affects.

Every test also checks the accumulated incremental output against a fresh
full translation of the same mesh, so incrementality can never trade
correctness for speed.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from unittest import mock

from tests.builders import parse_yaml
from tests.translate.ztunnel.fixtures import CONFIG, Output
from xds import type_urls
from xds.model import KubeObject, MeshStore
from xds.model.core import Pod, Service
from xds.model.frozen import FrozenMap
from xds.model.meta import ObjectKey
from xds.resources import Resource, Update
from xds.sources.files import load_directory
from xds.translate.ztunnel import ZtunnelTranslator

BASE = """
---
apiVersion: v1
kind: Namespace
metadata: {name: ns1}
---
apiVersion: v1
kind: Service
metadata: {name: svc-a, namespace: ns1}
spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a1, namespace: ns1, labels: {app: a}}
spec: {nodeName: node1}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: a2, namespace: ns1, labels: {app: a}}
status: {phase: Running, podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: b1, namespace: ns1, labels: {app: b}}
status: {phase: Running, podIP: 10.0.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: ns2, labels: {app: a}}
status: {phase: Running, podIP: 10.0.1.1}
"""


class Harness:
    """A store, a translator fed incrementally, and the ztunnel-side view of its output."""

    def __init__(self, manifests: str | list[KubeObject]) -> None:
        self.store = MeshStore(CONFIG)
        self.translator = ZtunnelTranslator()
        self.output = Output()
        self.serialized = 0
        """Resources the last ``change`` serialized (rebuilt), changed or not."""
        self.store.apply(parse_yaml(manifests) if isinstance(manifests, str) else manifests)
        self.output.apply(self.translator.translate(self.store, None))

    def change(
        self,
        upserts: list[KubeObject] | str = (),  # type: ignore[assignment]
        deletes: list[ObjectKey] = (),
    ) -> list[Update]:  # type: ignore[assignment]
        if isinstance(upserts, str):
            upserts = parse_yaml(upserts)
        changes = self.store.apply(upserts, deletes)
        # Every resource a translator builds goes through Resource.from_message.
        with mock.patch.object(
            Resource, "from_message", side_effect=Resource.from_message
        ) as built:
            updates = self.translator.translate(self.store, changes)
        self.serialized = built.call_count
        self.output.apply(updates)
        self.assert_consistent()
        return updates

    def assert_consistent(self) -> None:
        fresh = Output()
        fresh.apply(ZtunnelTranslator().translate(self.store, None))
        assert {n: r.version for n, r in self.output.addresses.items()} == {
            n: r.version for n, r in fresh.addresses.items()
        }
        assert {n: r.aliases for n, r in self.output.addresses.items()} == {
            n: r.aliases for n, r in fresh.addresses.items()
        }
        assert {n: r.version for n, r in self.output.authorizations.items()} == {
            n: r.version for n, r in fresh.authorizations.items()
        }

    def pod(self, name: str, namespace: str = "ns1") -> Pod:
        pod = self.store.get(Pod, namespace, name)
        assert pod is not None
        return pod


def names(updates: list[Update], type_url: str = type_urls.ADDRESS) -> tuple[list[str], list[str]]:
    """(upserted names, removed names) of one type, sorted."""
    upserts = sorted(r.name for u in updates if u.type_url == type_url for r in u.upserts)
    removals = sorted(n for u in updates if u.type_url == type_url for n in u.removals)
    return upserts, removals


def test_full_translation_replaces_everything() -> None:
    updates = ZtunnelTranslator().translate(_store(BASE), None)
    assert [(u.type_url, u.replace) for u in updates] == [
        (type_urls.ADDRESS, True),
        (type_urls.AUTHORIZATION, True),
    ]
    assert len(updates[0].upserts) == 5


def test_one_pod_change_is_one_upsert() -> None:
    harness = Harness(BASE)
    pod = harness.pod("a1")
    updates = harness.change([replace(pod, ready=True)])
    assert names(updates) == (["cluster0//Pod/ns1/a1"], [])
    assert harness.serialized == 1  # only that pod was rebuilt
    assert [u.type_url for u in updates] == [type_urls.ADDRESS]
    assert all(not u.replace for u in updates)


def test_pod_delete_is_one_removal() -> None:
    harness = Harness(BASE)
    updates = harness.change(deletes=[harness.pod("b1").key])
    assert names(updates) == ([], ["cluster0//Pod/ns1/b1"])


def test_unchanged_object_produces_nothing() -> None:
    harness = Harness(BASE)
    assert harness.change([harness.pod("a1")]) == []


def test_change_invisible_on_the_wire_produces_nothing() -> None:
    harness = Harness(BASE)
    pod = harness.pod("a1")
    meta = replace(pod.meta, annotations=FrozenMap({"unrelated": "yes"}))
    assert harness.change([replace(pod, meta=meta)]) == []


def test_selector_change_rebuilds_old_and_new_selection_only() -> None:
    harness = Harness(BASE)
    service = harness.store.get(Service, "ns1", "svc-a")
    assert service is not None
    updates = harness.change([replace(service, selector=FrozenMap({"app": "b"}))])
    # The Service message itself does not carry its selector: only workloads change.
    assert names(updates) == (
        ["cluster0//Pod/ns1/a1", "cluster0//Pod/ns1/a2", "cluster0//Pod/ns1/b1"],
        [],
    )


def test_service_port_change_rebuilds_service_and_its_endpoints() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: v1
kind: Service
metadata: {name: svc-a, namespace: ns1}
spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: 9090}]}
""")
    assert names(updates) == (
        ["cluster0//Pod/ns1/a1", "cluster0//Pod/ns1/a2", "ns1/svc-a.ns1.svc.cluster.local"],
        [],
    )


def test_service_change_not_seen_by_endpoints_leaves_workloads_alone() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: v1
kind: Service
metadata: {name: svc-a, namespace: ns1}
spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: 8080}],
       publishNotReadyAddresses: true}
""")
    assert names(updates) == (["ns1/svc-a.ns1.svc.cluster.local"], [])


def test_service_delete_removes_it_from_workloads() -> None:
    harness = Harness(BASE)
    updates = harness.change(deletes=[ObjectKey("Service", "ns1", "svc-a")])
    assert names(updates) == (
        ["cluster0//Pod/ns1/a1", "cluster0//Pod/ns1/a2"],
        ["ns1/svc-a.ns1.svc.cluster.local"],
    )


def test_namespace_label_change_rebuilds_its_pods() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio.io/dataplane-mode: ambient}}
""")
    assert names(updates) == (
        ["cluster0//Pod/ns1/a1", "cluster0//Pod/ns1/a2", "cluster0//Pod/ns1/b1"],
        [],
    )


def test_waypoint_becoming_ready_binds_the_namespace() -> None:
    harness = Harness(
        BASE
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: ns1, labels: {istio.io/waypoint-for: all}}
spec: {gatewayClassName: istio-waypoint}
"""
    )
    assert (
        harness.change("""
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio.io/use-waypoint: wp}}
""")
        == []
    )  # not ready: nothing changes on the wire
    updates = harness.change("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: ns1, labels: {istio.io/waypoint-for: all}}
spec: {gatewayClassName: istio-waypoint}
status: {addresses: [{type: Hostname, value: wp.ns1.svc.cluster.local}]}
""")
    assert names(updates) == (
        [
            "cluster0//Pod/ns1/a1",
            "cluster0//Pod/ns1/a2",
            "cluster0//Pod/ns1/b1",
            "ns1/svc-a.ns1.svc.cluster.local",
        ],
        [],
    )


def test_selector_policy_updates_policy_and_selected_pods() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pol, namespace: ns1}
spec: {selector: {matchLabels: {app: b}}, rules: [{}]}
""")
    assert names(updates) == (["cluster0//Pod/ns1/b1"], [])
    assert names(updates, type_urls.AUTHORIZATION) == (["ns1/pol"], [])
    updates = harness.change(deletes=[ObjectKey("AuthorizationPolicy", "ns1", "pol")])
    assert names(updates) == (["cluster0//Pod/ns1/b1"], [])
    assert names(updates, type_urls.AUTHORIZATION) == ([], ["ns1/pol"])


def test_peer_authentication_adds_static_policy_and_references() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ns1}
spec: {mtls: {mode: STRICT}}
""")
    assert names(updates) == (
        ["cluster0//Pod/ns1/a1", "cluster0//Pod/ns1/a2", "cluster0//Pod/ns1/b1"],
        [],
    )
    assert names(updates, type_urls.AUTHORIZATION) == (
        ["istio-system/istio_converted_static_strict"],
        [],
    )
    updates = harness.change("""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: ns1}
spec: {mtls: {mode: PERMISSIVE}}
""")
    assert names(updates, type_urls.AUTHORIZATION) == ([], [])  # static policy stays


def test_endpoint_slice_target_ref_attaches_pod_to_selectorless_service() -> None:
    harness = Harness(
        BASE
        + """
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: ns1}
spec: {clusterIP: 10.96.0.9, ports: [{name: http, port: 80}]}
"""
    )
    updates = harness.change("""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: manual-1, namespace: ns1, labels: {kubernetes.io/service-name: manual}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.3], targetRef: {kind: Pod, name: b1}}]
ports: [{name: http, port: 80, protocol: TCP}]
""")
    assert names(updates) == (["cluster0//Pod/ns1/b1"], [])


def test_endpoint_slice_readiness_churn_rebuilds_no_pod() -> None:
    slice_yaml = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-a-1, namespace: ns1, labels: {{kubernetes.io/service-name: svc-a}}}}
addressType: IPv4
endpoints:
- {{addresses: [10.0.0.1], conditions: {{ready: {ready}}}, targetRef: {{kind: Pod, name: a1}}}}
- {{addresses: [10.0.0.2], targetRef: {{kind: Pod, name: a2}}}}
ports: [{{port: 8080, protocol: TCP}}]
"""
    harness = Harness(BASE)
    harness.change(slice_yaml.format(ready="true"))
    assert harness.change(slice_yaml.format(ready="false")) == []
    assert harness.serialized == 0  # no Workload was even rebuilt


def test_node_label_change_updates_pods_on_it() -> None:
    harness = Harness(
        BASE
        + """
---
apiVersion: v1
kind: Node
metadata: {name: node1}
"""
    )
    updates = harness.change("""
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {topology.kubernetes.io/zone: z1}}
""")
    assert names(updates) == (["cluster0//Pod/ns1/a1"], [])


def test_network_change_rebuilds_everything() -> None:
    harness = Harness(BASE)
    updates = harness.change("""
apiVersion: v1
kind: Namespace
metadata: {name: istio-system, labels: {topology.istio.io/network: net2}}
""")
    assert updates and all(u.replace for u in updates)  # something, and all of it rebuilt


def test_random_edits_of_the_demo_mesh_stay_consistent() -> None:
    demo, errors = load_directory(Path(__file__).parents[3] / "xds" / "sources" / "demo")
    assert not errors
    harness = Harness(demo)
    rng = random.Random(7)
    label_choices = [
        {},
        {"app": "reviews"},
        {"app": "ratings", "version": "v2"},
        {"istio.io/use-waypoint": "none"},
        {"istio.io/use-waypoint": "waypoint"},
        {"istio.io/waypoint-for": "all"},
        {"istio.io/dataplane-mode": "none"},
        {"istio.io/dataplane-mode": "ambient"},
        {"gateway.networking.k8s.io/gateway-name": "waypoint"},
        {"topology.kubernetes.io/zone": "zone-c"},
    ]
    for _ in range(150):
        kept = list(harness.store.keys())
        key = rng.choice(kept)
        obj = harness.store.get_by_key(key)
        assert obj is not None
        action = rng.random()
        if action < 0.2:
            harness.change(deletes=[key])
            harness.change([obj])  # and back
        else:
            labels = FrozenMap({**obj.labels, **rng.choice(label_choices)})
            harness.change([replace(obj, meta=replace(obj.meta, labels=labels))])


def _store(manifests: str) -> MeshStore:
    store = MeshStore(CONFIG)
    store.apply(parse_yaml(manifests))
    return store
