"""Pod churn takes the waypoint translator's fast path; it must agree with a full build."""

from __future__ import annotations

import dataclasses
import ipaddress
import random

from loadtest import meshgen
from tests.builders import mesh_store, model, parse
from xds.model import wellknown
from xds.model.core import Pod, Service
from xds.model.frozen import FrozenMap
from xds.model.gateway import Gateway
from xds.model.mesh import MeshStore
from xds.model.security import AuthorizationPolicy
from xds.resources import Update
from xds.translate.waypoint import WaypointTranslator


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
    translator.translate(mesh, None)
    rng = random.Random(7)
    waypoint_namespaces = sorted({g.namespace for g in mesh.objects(Gateway)})
    bound = 0
    for step in range(90):
        pods = [p for p in mesh.objects(Pod) if wellknown.GATEWAY_NAME not in p.labels]
        pod = rng.choice(pods)
        services = [s for s in mesh.objects(Service) if s.name != "waypoint"]
        service = rng.choice(services)
        match step % 6:
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
        translator.translate(mesh, changes)
        bound += sum(len(i.config.workloads) for i in translator._inputs.values())
        fresh = WaypointTranslator()
        fresh.translate(mesh, None)
        assert translator._inputs == fresh._inputs, f"diverged at step {step}"
    assert bound > 0  # the churn did exercise workload bindings


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
