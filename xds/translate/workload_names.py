"""Workload identity strings: uids, workload names, canonical service name/revision.

The uid formats are istiod's (ambient-index §2.1, §2.3, §2.4); ztunnel only
needs them unique, but keeping istiod's spelling keeps resource names, debug
output and ztunnel's ``//Pod/`` tie-break identical.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from xds.model import wellknown
from xds.model.core import Pod

_CANONICAL_NAME_LABELS = (wellknown.CANONICAL_NAME, wellknown.APP_NAME, wellknown.APP)
_CANONICAL_REVISION_LABELS = (
    wellknown.CANONICAL_REVISION,
    wellknown.APP_VERSION,
    wellknown.VERSION,
)
_CRONJOB_JOB_NAME = re.compile(r"(.+)-\d{8,10}")


def pod_uid(cluster_id: str, namespace: str, name: str) -> str:
    return f"{cluster_id}//Pod/{namespace}/{name}"


def workload_entry_uid(cluster_id: str, namespace: str, name: str) -> str:
    return f"{cluster_id}/networking.istio.io/WorkloadEntry/{namespace}/{name}"


def service_entry_endpoint_uid(cluster_id: str, namespace: str, name: str, address: str) -> str:
    return f"{cluster_id}/networking.istio.io/ServiceEntry/{namespace}/{name}/{address}"


def endpoint_slice_uid(cluster_id: str, namespace: str, name: str, address: str) -> str:
    return f"{cluster_id}/discovery.k8s.io/EndpointSlice/{namespace}/{name}/{address}"


def _first(labels: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in labels:
            return labels[key]
    return None


def canonical_name(labels: Mapping[str, str], workload_name: str) -> str:
    value = _first(labels, _CANONICAL_NAME_LABELS)
    return workload_name if value is None else value


def canonical_revision(labels: Mapping[str, str]) -> str:
    value = _first(labels, _CANONICAL_REVISION_LABELS)
    return "latest" if value is None else value


def _controller_workload_name(pod: Pod) -> str:
    """The name of the pod's controlling workload, by istiod's heuristics.

    Only pods with a generated name are looked at, and only through the
    controller owner reference: a ReplicaSet named ``<deployment>-<hash>``
    gives the Deployment, likewise Argo Rollouts; an OpenShift
    ReplicationController gives its DeploymentConfig; a Job named
    ``<cronjob>-<8..10 digits>`` gives the CronJob.
    """
    controller = pod.meta.controller if pod.meta.generate_name else None
    if controller is None or not controller.name:
        return pod.name
    labels = pod.labels
    if controller.kind == "ReplicaSet":
        for hash_label in ("pod-template-hash", "rollouts-pod-template-hash"):
            template_hash = labels.get(hash_label, "")
            if template_hash and controller.name.endswith(template_hash):
                return controller.name.removesuffix(f"-{template_hash}")
    elif controller.kind == "ReplicationController" and labels.get("deploymentconfig"):
        return labels["deploymentconfig"]
    elif controller.kind == "Job" and (match := _CRONJOB_JOB_NAME.fullmatch(controller.name)):
        return match.group(1)
    return controller.name


def pod_workload_name(pod: Pod) -> str:
    """``service.istio.io/workload-name``, else the controller-derived name."""
    label = pod.labels.get(wellknown.WORKLOAD_NAME)
    return label if label is not None else _controller_workload_name(pod)


def workload_entry_workload_name(
    name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> str:
    """The auto-registration group, else the workload-name label, else the entry's name."""
    group = annotations.get(wellknown.AUTO_REGISTRATION_GROUP)
    if group is not None:
        return group
    label = labels.get(wellknown.WORKLOAD_NAME)
    return name if label is None else label
