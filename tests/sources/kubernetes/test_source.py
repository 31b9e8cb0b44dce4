"""The Kubernetes source against a real kube-apiserver: list, watch, resilience."""

from __future__ import annotations

import asyncio
import logging

import pytest

from xds.model.core import Pod, Service
from xds.model.meta import ObjectKey
from xds.model.networking import WorkloadEntry
from xds.model.security import AuthorizationPolicy
from xds.sources.kubernetes.api import ClusterConfig
from xds.sources.kubernetes.reflector import Backoff
from xds.sources.kubernetes.source import KubernetesOptions

from ...helpers import wait_until
from ...kube.cluster import LIMITED_TOKEN, LIMITED_USER, ApiError, Cluster, fresh_namespace
from ...kube.objects import (
    apply_all,
    authorization_policy,
    namespace,
    pod,
    pod_path,
    service,
    service_account,
    workload_entry,
)
from .support import fast_options, running_source

pytestmark = pytest.mark.kube


async def test_lists_then_follows_every_change(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("src")
    apply_all(
        api,
        namespace(ns),
        service_account(ns, "default"),
        pod(ns, "web-1", "10.1.0.11"),
        service(ns, "web", "10.96.100.11"),
    )
    async with running_source(fast_options(kube_cluster)) as watched:
        mesh = watched.mesh
        listed = mesh.get(Pod, ns, "web-1")
        assert listed is not None and str(listed.pod_ips[0]) == "10.1.0.11"
        assert mesh.get(Service, ns, "web") is not None

        watched.changes.clear()
        api.merge_patch(pod_path(ns, "web-1"), {"metadata": {"labels": {"version": "v2"}}})
        await wait_until(
            lambda: (
                (p := mesh.get(Pod, ns, "web-1")) is not None
                and p.meta.labels.get("version") == "v2"
            )
        )
        api.merge_patch(
            f"/api/v1/namespaces/{ns}/services/web",
            {"spec": {"ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}},
        )
        await wait_until(
            lambda: (s := mesh.get(Service, ns, "web")) is not None and s.ports[0].port == 8000
        )
        api.create(authorization_policy(ns, "deny"))
        await wait_until(lambda: mesh.get(AuthorizationPolicy, ns, "deny") is not None)
        api.delete(f"/apis/security.istio.io/v1/namespaces/{ns}/authorizationpolicies/deny")
        await wait_until(lambda: mesh.get(AuthorizationPolicy, ns, "deny") is None)
        # Each edit reached the store as exactly that object's change.
        assert watched.changed_keys() == {
            f"Pod/{ns}/web-1",
            f"Service/{ns}/web",
            f"AuthorizationPolicy/{ns}/deny",
        }


async def test_restart_and_compaction_relist_only_the_differences(kube_cluster: Cluster) -> None:
    """The API server goes away; meanwhile another one changes things and etcd is
    compacted, so our resourceVersion is gone (410): a re-list applies exactly what
    changed, and the last known state was served throughout."""
    api = kube_cluster.api()
    ns = fresh_namespace("relist")
    apply_all(
        api,
        namespace(ns),
        service_account(ns, "default"),
        pod(ns, "keep", "10.1.1.1"),
        pod(ns, "drop", "10.1.1.2"),
        pod(ns, "edit", "10.1.1.3"),
    )
    async with running_source(fast_options(kube_cluster)) as watched:
        mesh = watched.mesh
        assert watched.source is not None
        kube_cluster.stop_apiserver()
        other = kube_cluster.start_apiserver(port=_other_port())
        try:
            peer = kube_cluster.api(port=other)
            peer.delete(pod_path(ns, "drop"))
            peer.merge_patch(pod_path(ns, "edit"), {"metadata": {"labels": {"edited": "yes"}}})
            peer.apply(pod(ns, "new", "10.1.1.4"))
            await asyncio.sleep(0.5)
            # Still served while the API server is away.
            assert mesh.get(Pod, ns, "drop") is not None
            kube_cluster.compact_etcd()
        finally:
            kube_cluster.stop_apiserver(other)
        watched.changes.clear()
        kube_cluster.start_apiserver()
        await wait_until(lambda: mesh.get(Pod, ns, "new") is not None, within=30)
        await wait_until(lambda: mesh.get(Pod, ns, "drop") is None)
        edited = mesh.get(Pod, ns, "edit")
        assert edited is not None and edited.meta.labels.get("edited") == "yes"
        # Only the three differences (plus whatever else changed in the cluster meanwhile,
        # which in this namespace is nothing).
        in_namespace = {k for k in watched.changed_keys() if f"/{ns}/" in k}
        assert in_namespace == {f"Pod/{ns}/drop", f"Pod/{ns}/edit", f"Pod/{ns}/new"}
        from xds.sources.kubernetes import metrics

        assert metrics.RELISTS.labels("pods")._value.get() >= 1


def _other_port() -> int:
    from ...helpers import free_port

    return free_port()


async def test_crd_installed_after_start_is_watched(kube_cluster: Cluster) -> None:
    crd = "workloadentries.networking.istio.io"
    api = kube_cluster.api()
    try:
        kube_cluster.delete_crd(crd)
    except ApiError as error:
        assert error.status == 404
    await wait_until(lambda: _not_served(kube_cluster), within=30)
    ns = fresh_namespace("crd")
    api.create(namespace(ns))
    async with running_source(fast_options(kube_cluster)) as watched:
        assert watched.source is not None
        assert "WorkloadEntry" in watched.source.unavailable["missing"]
        kube_cluster.install_crds({crd})
        api.create(workload_entry(ns, "vm", "10.9.9.9"))
        await wait_until(lambda: watched.mesh.get(WorkloadEntry, ns, "vm") is not None, within=20)
        assert "WorkloadEntry" not in watched.source.unavailable["missing"]

        # Deleting the CRD takes its objects with it; installing it again brings the kind back.
        kube_cluster.delete_crd(crd)
        await wait_until(lambda: watched.mesh.get(WorkloadEntry, ns, "vm") is None, within=20)
        await wait_until(
            lambda: "WorkloadEntry" in watched.source.unavailable["missing"], within=20
        )
        kube_cluster.install_crds({crd})
        api.create(workload_entry(ns, "vm2", "10.9.9.10"))
        await wait_until(lambda: watched.mesh.get(WorkloadEntry, ns, "vm2") is not None, within=20)


def _not_served(cluster: Cluster) -> bool:
    try:
        cluster.api().get("/apis/networking.istio.io/v1/workloadentries?limit=1")
    except ApiError as error:
        return error.status == 404
    return False


async def test_forbidden_kind_is_skipped_and_the_rest_works(
    kube_cluster: Cluster, tmp_path: object
) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("rbac")
    apply_all(
        api,
        namespace(ns),
        service_account(ns, "default"),
        pod(ns, "web-1", "10.1.2.1"),
        authorization_policy(ns, "hidden"),
    )
    role = f"xds-limited-{ns}"
    api.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {
                    "apiGroups": [
                        "",
                        "discovery.k8s.io",
                        "gateway.networking.k8s.io",
                        "networking.istio.io",
                        "telemetry.istio.io",
                    ],
                    "resources": ["*"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["security.istio.io"],
                    "resources": ["peerauthentications", "requestauthentications"],
                    "verbs": ["list", "watch"],
                },
            ],
        }
    )
    api.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [
                {"kind": "User", "name": LIMITED_USER, "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    from pathlib import Path

    kubeconfig = kube_cluster.write_kubeconfig(Path(str(tmp_path)) / "limited", LIMITED_TOKEN)
    options = KubernetesOptions(
        ClusterConfig(kubeconfig), recheck_interval=0.5, backoff=Backoff(base=0.05, ceiling=0.5)
    )
    async with running_source(options) as watched:
        assert watched.source is not None
        assert watched.source.unavailable["forbidden"] == ["AuthorizationPolicy"]
        assert watched.mesh.get(Pod, ns, "web-1") is not None
        assert watched.mesh.get(AuthorizationPolicy, ns, "hidden") is None


def test_invalid_object_is_named_and_its_last_good_version_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real CRD schemas refuse what our parser refuses today, but version skew (a
    newer API server, a CRD without schema) can deliver such an object: it is named,
    with the field, and not taken for a deletion."""
    from prometheus_client import REGISTRY

    from xds.sources.kubernetes.kinds import ApiResource
    from xds.sources.kubernetes.reflector import Reflector

    applied: list[tuple[list[str], list[ObjectKey]]] = []
    services = ApiResource(Service, "", "v1", "services", True)
    reflector = Reflector(
        None,
        services,  # type: ignore[arg-type]
        lambda up, down: applied.append(([str(o.key) for o in up], list(down))),
        lambda: [ObjectKey("Service", "n", "bad")],
    )
    bad = {"metadata": {"name": "bad", "namespace": "n"}, "spec": {"clusterIP": "zzz"}}
    key, obj = reflector._parse(bad)
    assert key == ObjectKey("Service", "n", "bad") and obj is None
    assert "spec.clusterIP" in reflector.invalid[key]
    (record,) = [r for r in caplog.records if "invalid object skipped" in r.getMessage()]
    assert (record.__dict__["object_name"], record.__dict__["field"]) == ("bad", "spec.clusterIP")
    assert REGISTRY.get_sample_value("xds_config_errors", {"source": "kubernetes/services"}) == 1
    # Logged once, not on every re-list.
    reflector._parse(dict(bad))
    assert len([r for r in caplog.records if "invalid object" in r.getMessage()]) == 1
    # Fixed: no longer counted.
    reflector._parse({"metadata": {"name": "bad", "namespace": "n"}, "spec": {}})
    assert REGISTRY.get_sample_value("xds_config_errors", {"source": "kubernetes/services"}) == 0


def test_ignored_fields_are_told_once_per_object(caplog: pytest.LogCaptureFixture) -> None:
    """Every watch event re-parses the object: the warning is not repeated with each,
    only when the object comes back after a deletion or its ignored fields change."""
    from xds.model.networking import DestinationRule
    from xds.sources.kubernetes.kinds import ApiResource
    from xds.sources.kubernetes.reflector import Reflector

    rules = ApiResource(DestinationRule, "networking.istio.io", "v1", "destinationrules", True)
    reflector = Reflector(None, rules, lambda up, down: None, list)  # type: ignore[arg-type]
    rule = {
        "metadata": {"name": "reviews", "namespace": "n"},
        "spec": {"host": "reviews", "trafficPolicy": {"proxyProtocol": {"version": "V2"}}},
    }

    def told() -> list[str]:
        return [r.__dict__["fields"] for r in caplog.records if "ignored" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="xds.kube"):
        reflector.event("ADDED", dict(rule))
        reflector.event("MODIFIED", dict(rule))
        assert told() == ["spec.trafficPolicy.proxyProtocol"]
        reflector.event("DELETED", dict(rule))
        reflector.event("ADDED", dict(rule))
        assert len(told()) == 2


def test_key_of_a_deleted_object() -> None:
    from xds.sources.kubernetes.kinds import ApiResource
    from xds.sources.kubernetes.reflector import deletions, object_key

    pods = ApiResource(Pod, "", "v1", "pods", True)
    assert object_key(pods, {"metadata": {"name": "a", "namespace": "n"}}) == ObjectKey(
        "Pod", "n", "a"
    )
    assert object_key(pods, {"metadata": {}}) is None
    keys = [ObjectKey("Pod", "n", x) for x in "abc"]
    assert deletions(keys, keys[1:]) == keys[:1]
