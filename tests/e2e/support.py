"""What several end-to-end test modules share: node ids, demo-mesh names, manifest edits,
a ztunnel client, a CSR call, Gateway API objects for the Kubernetes tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from xds.client import DeltaClient
from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

from .. import builders
from ..kube.cluster import Api, ApiError
from ..security.support import ec_key, make_csr

# From the file mesh tests.

ZTUNNEL = "ztunnel~10.244.1.2~ztunnel-a.istio-system~istio-system.svc.cluster.local"


PRODUCTPAGE = "Kubernetes//Pod/bookinfo/productpage-v1-d5789fdfb-4xjbq"


async def drain(client: Any, quiet: float = 0.4) -> list[Any]:
    """Every response that arrives until ``quiet`` seconds pass without one."""
    responses = []
    while True:
        try:
            responses.append(await client.next(within=quiet))
        except TimeoutError:
            return responses


def edit(path: Path, old: str, new: str, *more: tuple[str, str]) -> None:
    """Replace text in a manifest in one atomic write (as an editor or a ConfigMap
    update does): a poll never sees a truncated file or half of the edits."""
    text = path.read_text()
    for before, after in ((old, new), *more):
        assert before in text, f"{before!r} not in {path.name}"
        text = text.replace(before, after, 1)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


# From the ztunnel stream tests.

NEW_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: ratings-v2-5b7c9-xyz12
  namespace: bookinfo
  uid: uid-ratings-v2
  labels: {app: ratings, version: v2}
spec:
  nodeName: node-b
  serviceAccountName: bookinfo-ratings
  containers:
  - name: ratings
    ports: [{name: http, containerPort: 9080}]
status:
  phase: Running
  podIP: 10.244.2.77
  podIPs: [{ip: 10.244.2.77}]
  conditions: [{type: Ready, status: 'True'}]
"""


NEW_UID = "Kubernetes//Pod/bookinfo/ratings-v2-5b7c9-xyz12"


def ztunnel(port: int) -> DeltaClient:
    # What ztunnel sends: its node id and the metadata keys of its initial request.
    return DeltaClient(
        grpc.aio.insecure_channel(f"127.0.0.1:{port}"),
        ZTUNNEL,
        metadata={
            "NAME": "ztunnel-a",
            "NAMESPACE": "istio-system",
            "INSTANCE_IPS": "10.244.1.2",
            "NODE_NAME": "node-a",
            "CLUSTER_ID": "Kubernetes",
        },
    )


# From the kubernetes security tests.


async def create_certificate(
    channel: grpc.aio.Channel, headers: list[tuple[str, str]], impersonate: str | None = None
) -> list[str]:
    stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
    request = ca_pb2.IstioCertificateRequest(csr=make_csr(None, ec_key()), validity_duration=3600)
    if impersonate:
        request.metadata.update({"ImpersonatedIdentity": impersonate})
    reply = await stub.CreateCertificate(request, metadata=headers, timeout=15)
    return list(reply.cert_chain)


# From the kubernetes waypoints tests.

GATEWAYS = "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/gateways"


def gateway(
    ns: str,
    name: str = "waypoint",
    spec: dict[str, Any] | None = None,
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A waypoint Gateway as a user creates it: its controller gives it an address."""
    return builders.gateway(ns, name, annotations=annotations, spec=spec)


def bound_route(
    kind: str, ns: str, name: str, *, parent: str, backend: str, parent_kind: str = "Gateway"
) -> dict[str, Any]:
    """An HTTPRoute or GRPCRoute with one parent (a Gateway, or a Service) and one backend."""
    ref: dict[str, Any] = {"name": parent}
    if parent_kind == "Service":
        ref.update(group="", kind="Service", port=80)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"parentRefs": [ref], "rules": [{"backendRefs": [{"name": backend, "port": 80}]}]},
    }


def owned_paths(ns: str, name: str) -> dict[str, str]:
    return {
        "ServiceAccount": f"/api/v1/namespaces/{ns}/serviceaccounts/{name}",
        "Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments/{name}",
        "Service": f"/api/v1/namespaces/{ns}/services/{name}",
    }


def get_or_none(api: Api, path: str) -> Any:
    try:
        return api.get(path)
    except ApiError as error:
        if error.status == 404:
            return None
        raise
