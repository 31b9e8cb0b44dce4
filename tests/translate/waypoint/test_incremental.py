"""Pod churn takes the waypoint translator's fast path; it must agree with a full build."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections.abc import Callable

import pytest

from loadtest import meshgen
from tests.builders import Manifest as Doc
from tests.builders import mesh_store, model, parse
from tests.translate.waypoint.fixtures import meta, other, pod, reviews_subsets, shop
from xds import type_urls
from xds.model import wellknown
from xds.model.core import Pod, Service
from xds.model.frozen import FrozenMap
from xds.model.gateway import Gateway
from xds.model.mesh import MeshStore
from xds.model.meta import ObjectKey
from xds.model.security import AuthorizationPolicy
from xds.resources import Update
from xds.translate.waypoint.translator import WaypointTranslator


def test_pod_service_and_policy_churn_matches_a_full_build() -> None:
    spec = meshgen.MeshSpec(
        pods=600, services=60, namespaces=6, waypoints=3, nodes=10, authorization_policies=5
    )
    documents = list(meshgen.manifests(spec))
    for document in documents:
        if document["kind"] == "Gateway":  # bind workloads too, not only services
            document["metadata"]["labels"]["istio.io/waypoint-for"] = "all"
    mesh = mesh_store(*parse(*documents))
    translator = WaypointTranslator()
    served = _served({}, translator.translate(mesh, None))
    rng = random.Random(7)
    waypoint_namespaces = sorted({g.namespace for g in mesh.objects(Gateway)})
    bound = 0
    for step in range(120):
        pods = [p for p in mesh.objects(Pod) if wellknown.GATEWAY_NAME not in p.labels]
        pod = rng.choice(pods)
        services = [s for s in mesh.objects(Service) if s.name != "waypoint"]
        service = rng.choice(services)
        match step % 8:
            case 7:  # a pod and a Service (maybe elsewhere) in one batch
                port = dataclasses.replace(service.ports[0], port=9500 + step, name=f"x-{step}")
                changes = mesh.apply(
                    [
                        dataclasses.replace(service, ports=(*service.ports, port)),
                        dataclasses.replace(pod, ready=not pod.ready),
                    ]
                )
            case 6:  # several pods at once: moved, relabelled out of their Service, gone
                first, second, third = rng.sample(pods, 3)
                changes = mesh.apply(
                    [
                        dataclasses.replace(
                            first, pod_ips=(ipaddress.ip_address(f"10.98.{step}.1"),)
                        ),
                        dataclasses.replace(
                            second,
                            meta=dataclasses.replace(
                                second.meta, labels=FrozenMap({"app": "elsewhere"})
                            ),
                        ),
                    ],
                    [third.key],
                )
            case 0:  # a new IP
                changed = dataclasses.replace(
                    pod, pod_ips=(ipaddress.ip_address(f"10.99.{step}.1"),)
                )
                changes = mesh.apply([changed])
            case 1:  # bound to a waypoint by its own label (maybe across namespaces)
                labels = dict(pod.labels) | {
                    wellknown.USE_WAYPOINT: "waypoint",
                    wellknown.USE_WAYPOINT_NAMESPACE: rng.choice(waypoint_namespaces),
                }
                changed = dataclasses.replace(
                    pod, meta=dataclasses.replace(pod.meta, labels=FrozenMap(labels))
                )
                changes = mesh.apply([changed])
            case 2:  # deleted
                changes = mesh.apply([], [pod.key])
            case 3:  # not ready any more
                changes = mesh.apply([dataclasses.replace(pod, ready=not pod.ready)])
            case 4:  # a Service bound elsewhere, or a port added
                if step % 12 == 4:
                    labels = dict(service.labels) | {
                        wellknown.USE_WAYPOINT: "waypoint",
                        wellknown.USE_WAYPOINT_NAMESPACE: rng.choice(waypoint_namespaces),
                    }
                    changed_service = dataclasses.replace(
                        service, meta=dataclasses.replace(service.meta, labels=FrozenMap(labels))
                    )
                else:
                    port = dataclasses.replace(
                        service.ports[0], port=9000 + step, name=f"extra-{step}"
                    )
                    changed_service = dataclasses.replace(service, ports=(*service.ports, port))
                changes = mesh.apply([changed_service])
            case _:  # an L7 policy on a waypoint, added and later removed
                namespace = rng.choice(waypoint_namespaces)
                policy = model(
                    {
                        "apiVersion": "security.istio.io/v1",
                        "kind": "AuthorizationPolicy",
                        "metadata": {"name": f"p{step % 2}", "namespace": namespace},
                        "spec": {
                            "targetRefs": [
                                {
                                    "group": "gateway.networking.k8s.io",
                                    "kind": "Gateway",
                                    "name": "waypoint",
                                }
                            ],
                            "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}],
                        },
                    },
                    AuthorizationPolicy,
                )
                existing = [
                    p.key
                    for p in mesh.objects(AuthorizationPolicy)
                    if p.name == policy.name and p.namespace == namespace
                ]
                changes = mesh.apply([] if existing else [policy], existing)
        served = _served(served, translator.translate(mesh, changes))
        bound += sum(len(i.config.workloads) for i in translator._inputs.values())
        fresh = WaypointTranslator()
        assert served == _served({}, fresh.translate(mesh, None)), f"diverged at step {step}"
        assert translator._inputs == fresh._inputs, f"diverged at step {step}"
    assert bound > 0  # the churn did exercise workload bindings


Served = dict[tuple[str, str], dict[str, str]]


def _served(served: Served, updates: list[Update]) -> Served:
    """What a store holds after ``updates``: name -> version per (scope, type)."""
    served = {key: dict(table) for key, table in served.items()}
    for update in updates:
        table = served.setdefault((update.scope, update.type_url), {})
        if update.replace:
            table.clear()
        for name in update.removals:
            table.pop(name, None)
        table.update((resource.name, resource.version) for resource in update.upserts)
    return {key: table for key, table in served.items() if table}


def test_a_reference_grant_arriving_later_opens_the_backend() -> None:
    """Grants are an input of the waypoint like its routes: adding or deleting one alone
    changes what is served."""
    from tests.translate.waypoint.fixtures import (
        ECHO,
        REVIEWS,
        http_route,
        other,
        reference_grant,
        shop,
        snapshot,
    )
    from xds import type_urls

    def route_cluster(updates: list[Update]) -> str:
        listener = snapshot(updates)[type_urls.LISTENER]["main_internal"]
        [chain] = [c for c in listener["filter_chains"] if c["name"] == REVIEWS]
        hosts = chain["filters"][-1]["typed_config"]["route_config"]["virtual_hosts"]
        return str(hosts[0]["routes"][0]["route"]["cluster"])

    rules = [{"backendRefs": [{"name": "echo", "namespace": "other", "port": 9080}]}]
    mesh = MeshStore()
    mesh.apply(parse(*shop(), *other(), http_route("shop", "r", "reviews", rules)))
    translator = WaypointTranslator()
    assert route_cluster(translator.translate(mesh, None)) == "UnknownService"
    [grant] = parse(reference_grant("HTTPRoute"))
    assert route_cluster(translator.translate(mesh, mesh.apply([grant]))) == ECHO
    assert route_cluster(translator.translate(mesh, mesh.apply([], [grant.key]))) == (
        "UnknownService"
    )


def _other_backends() -> list[Doc]:
    """Endpoints that do not come from a Service selector: a ServiceEntry selecting pods,
    a Service without selector fed by an EndpointSlice, and subsets of a DestinationRule."""
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta("shop", "mesh-external", labels={"istio.io/use-waypoint": "waypoint"}),
            "spec": {
                "hosts": ["api.shop.example"],
                "addresses": ["240.240.0.1"],
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 9080}],
                "resolution": "STATIC",
                "workloadSelector": {"labels": {"app": "api"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("shop", "manual"),
            "spec": {
                "clusterIP": "10.96.1.50",
                "ports": [{"name": "http", "port": 9080, "targetPort": 9080}],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": meta("shop", "manual-1", labels={"kubernetes.io/service-name": "manual"}),
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9080}],
            "endpoints": [
                {
                    "addresses": ["10.244.2.10"],
                    "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "namespace": "other", "name": "manual-1"},
                }
            ],
        },
        reviews_subsets(),
    ]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda: ([pod("shop", "api-1", "10.244.1.60", {"app": "api"})], []),
            id="a pod the ServiceEntry selects",
        ),
        pytest.param(
            lambda: ([pod("other", "manual-1", "10.244.2.10", {"app": "m"}, captured=False)], []),
            id="the pod behind an EndpointSlice, in another namespace, leaves the mesh",
        ),
        pytest.param(
            lambda: (
                [pod("shop", "reviews-v1", "10.244.1.10", {"app": "reviews", "version": "v2"})],
                [],
            ),
            id="a pod moves from one subset to another",
        ),
        pytest.param(
            lambda: ([], [ObjectKey("Pod", "shop", "reviews-v2")]),
            id="a pod goes",
        ),
    ],
)
def test_pod_changes_to_other_backends_match_a_full_build(
    change: Callable[[], tuple[list[Doc], list[ObjectKey]]],
) -> None:
    documents = [
        *shop(),
        *other(),
        *_other_backends(),
        pod("other", "manual-1", "10.244.2.10", {"app": "m"}),
    ]
    mesh = mesh_store(*parse(*documents))
    translator = WaypointTranslator()
    served = _served({}, translator.translate(mesh, None))
    upserts, deletions = change()
    changes = mesh.apply(parse(*upserts), deletions)
    assert changes.kinds == {"Pod"}
    updates = translator.translate(mesh, changes)
    assert updates, "the change must reach the waypoint"
    assert {u.type_url for u in updates} == {type_urls.ENDPOINT}
    assert _served(served, updates) == _served({}, WaypointTranslator().translate(mesh, None))
