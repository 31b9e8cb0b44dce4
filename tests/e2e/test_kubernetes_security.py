"""Kubernetes mode's security plumbing against a real API server: TokenReview on 15012,
node-bound impersonation, the CA from the cluster's Secrets, the root in every namespace."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from xds.type_urls import ADDRESS, AUTHORIZATION

from ..helpers import wait_until
from ..kube.cluster import ApiError, Cluster, fresh_namespace
from ..kube.objects import apply_all, namespace, service_account
from ..security.support import leaf_uris, verify_chain, write_plugin_ca
from .kube_plane import (
    SYSTEM,
    bearer,
    expired_token,
    kube_plane,
    request_token,
    running_pod,
    tls_channel,
    ztunnel_client,
)
from .support import create_certificate

pytestmark = pytest.mark.kube

CONFIG_MAP = "istio-ca-root-cert"


async def refused(
    channel: grpc.aio.Channel, headers: list[tuple[str, str]], impersonate: str | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_certificate(channel, headers, impersonate)
    return error.value


async def test_tokenreview_decides_who_gets_which_certificate(
    kube_cluster: Cluster, tmp_path: Path
) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("tr")
    apply_all(api, namespace(ns), service_account(ns, "app"), service_account(ns, "gone"))
    app = running_pod(api, ns, "app-1", "10.3.0.11", account="app")
    good = request_token(api, ns, "app", bound_pod=app)
    wrong_audience = request_token(api, ns, "app", audiences=("some-other-service",))
    api_audience = request_token(api, ns, "app", audiences=("https://kubernetes.default.svc",))
    expired = expired_token(kube_cluster, ns, "app")
    orphan = request_token(api, ns, "gone")
    api.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/gone")

    async with kube_plane(kube_cluster) as plane, tls_channel(plane) as channel:
        chain = await create_certificate(channel, bearer(good))
        assert leaf_uris(chain[0]) == [f"spiffe://cluster.local/ns/{ns}/sa/app"]
        assert verify_chain(tmp_path / "v", chain).returncode == 0
        # The CA's root is the one in the cluster's Secret.
        secret = api.get(f"/api/v1/namespaces/{SYSTEM}/secrets/istio-ca-secret")
        root = base64.b64decode(secret["data"]["ca-cert.pem"])
        assert x509.load_pem_x509_certificate(chain[-1].encode()) == x509.load_pem_x509_certificate(
            root
        )

        for token, why in (
            (wrong_audience, "audience"),
            (api_audience, "audience"),
            (expired, "expired"),
            (orphan, "deleted service account"),
        ):
            error = await refused(channel, bearer(token))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, why
            assert token not in (error.details() or "")
        # A clusterid naming another cluster is refused, whatever the token.
        error = await refused(channel, bearer(good, cluster_id="elsewhere"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "elsewhere" in (error.details() or "")
        # No clusterid at all means this cluster.
        await create_certificate(channel, bearer(good, cluster_id=None))


async def test_ztunnel_token_impersonates_only_pods_on_its_node(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns = fresh_namespace("imp")
    apply_all(api, namespace(ns), service_account(ns, "near"), service_account(ns, "far"))
    running_pod(api, ns, "near-1", "10.3.1.11", account="near", node_name="node-a")
    running_pod(api, ns, "far-1", "10.3.1.12", account="far", node_name="node-b")
    api.ensure(service_account(SYSTEM, "ztunnel"))
    ztunnel_pod_name = f"ztunnel-{ns}"
    ztunnel = running_pod(
        api,
        SYSTEM,
        ztunnel_pod_name,
        "10.3.1.2",
        account="ztunnel",
        node_name="node-a",
        app="ztunnel",
    )
    token = request_token(api, SYSTEM, "ztunnel", bound_pod=ztunnel)

    async with kube_plane(kube_cluster) as plane, tls_channel(plane) as channel:
        await wait_until(lambda: plane.mesh.get_by_key(_pod_key(ns, "far-1")) is not None)
        near = f"spiffe://cluster.local/ns/{ns}/sa/near"
        chain = await create_certificate(channel, bearer(token), impersonate=near)
        assert leaf_uris(chain[0]) == [near]
        error = await refused(
            channel, bearer(token), impersonate=f"spiffe://cluster.local/ns/{ns}/sa/far"
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "node-a" in (error.details() or "")
        # The node account's token also gets the ztunnel config on 15012.
        client = ztunnel_client(channel, headers=bearer(token))
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        assert (await client.next(within=10)).type_url in (ADDRESS, AUTHORIZATION)
        await client.close()
        # A workload's own token cannot impersonate anybody.
        app_token = request_token(api, ns, "near")
        error = await refused(
            channel, bearer(app_token), impersonate=f"spiffe://cluster.local/ns/{ns}/sa/far"
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def _pod_key(ns: str, name: str) -> object:
    from xds.model.meta import ObjectKey

    return ObjectKey("Pod", ns, name)


async def test_root_certificate_reaches_every_namespace_and_stays(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    async with kube_plane(kube_cluster) as plane:
        assert plane.security is not None
        root = plane.security.ca.root_pem

        def published(ns: str) -> bool:
            try:
                data = api.get(f"/api/v1/namespaces/{ns}/configmaps/{CONFIG_MAP}")
            except ApiError:
                return False
            return bool(
                data["data"].get("root-cert.pem") == root
                and data["metadata"]["labels"].get("istio.io/config") == "true"
            )

        await wait_until(lambda: published(SYSTEM), within=10)
        ns = fresh_namespace("root")
        started = time.monotonic()
        api.create(namespace(ns))
        await wait_until(lambda: published(ns), within=1.0)
        latency = time.monotonic() - started

        api.delete(f"/api/v1/namespaces/{ns}/configmaps/{CONFIG_MAP}")
        await wait_until(lambda: published(ns), within=5)
        api.merge_patch(
            f"/api/v1/namespaces/{ns}/configmaps/{CONFIG_MAP}",
            {"data": {"root-cert.pem": "tampered"}},
        )
        await wait_until(lambda: published(ns), within=5)
        # kube-public is skipped, as istiod does.
        api.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-public"}})
        await asyncio.sleep(0.5)
        assert not published("kube-public")
    assert latency < 1.0


async def test_replicas_share_one_self_signed_root(kube_cluster: Cluster) -> None:
    """Two replicas starting at once against a namespace without a CA: one root."""
    system = fresh_namespace("sys")
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        planes = await asyncio.gather(
            *(
                stack.enter_async_context(
                    kube_plane(kube_cluster, system_namespace=system, xds_port=0, http_port=0)
                )
                for _ in range(2)
            )
        )
        roots = {p.security.ca.root_fingerprint for p in planes if p.security is not None}
        assert len(roots) == 1
    async with kube_plane(kube_cluster, system_namespace=system, xds_port=0, http_port=0) as again:
        assert again.security is not None and again.security.ca.root_fingerprint in roots


async def test_plugin_cacerts_secret_is_used(kube_cluster: Cluster, tmp_path: Path) -> None:
    system = fresh_namespace("plug")
    plugin = write_plugin_ca(tmp_path / "cacerts")
    api = kube_cluster.api()
    api.create(namespace(system))
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cacerts", "namespace": system},
            "data": {
                f.name: base64.b64encode(f.read_bytes()).decode()
                for f in plugin.directory.iterdir()
            },
        }
    )
    async with kube_plane(kube_cluster, system_namespace=system, xds_port=0, http_port=0) as plane:
        assert plane.security is not None
        assert plane.security.ca.material.cert == plugin.intermediate
        assert list(plane.security.ca.material.roots) == [plugin.root]
    with pytest.raises(ApiError) as absent:
        api.get(f"/api/v1/namespaces/{system}/secrets/istio-ca-secret")
    assert absent.value.status == 404


async def test_istioctl_token_reads_debug_types_through_tokenreview(kube_cluster: Cluster) -> None:
    """Without ``--cert-dir`` istioctl mints a token for ``istio-system/default`` (audience
    ``istio-ca``, TokenRequest; no clusterid header) and asks 15012 for syncz, with a nonce
    of its own on the first request (pkg/adsc)."""
    from envoy.service.discovery.v3 import discovery_pb2

    from xds.client import make_node
    from xds.type_urls import DEBUG_SYNCZ

    api = kube_cluster.api()
    ns = fresh_namespace("ictl")
    api.ensure(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM}},
        service_account(SYSTEM, "default"),
        service_account(SYSTEM, "ztunnel"),
    )
    apply_all(api, namespace(ns), service_account(ns, "app"))
    system = request_token(api, SYSTEM, "default")
    workload = request_token(api, ns, "app")

    async def syncz(channel: grpc.aio.Channel, token: str) -> discovery_pb2.DiscoveryResponse:
        node = make_node(
            f"sidecar~0.0.0.0~istioctl.{SYSTEM}~{SYSTEM}.svc.cluster.local",
            {"GENERATOR": "event", "SERVICE_ACCOUNT": "default", "NAMESPACE": SYSTEM},
        )
        request = discovery_pb2.DiscoveryRequest(
            node=node,
            type_url=DEBUG_SYNCZ,
            response_nonce="2026-12-05 04:10:17.023491 +0000 UTC m=+0.012",
        )
        call = channel.stream_stream(
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
            request_serializer=discovery_pb2.DiscoveryRequest.SerializeToString,
            response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
        )(iter([request]), metadata=bearer(token, cluster_id=None))
        try:
            response: discovery_pb2.DiscoveryResponse = await asyncio.wait_for(call.read(), 10)
        finally:
            call.cancel()
        return response

    async with kube_plane(kube_cluster) as plane, tls_channel(plane) as channel:
        ztunnel = ztunnel_client(
            channel, headers=bearer(request_token(api, SYSTEM, "ztunnel"), cluster_id=None)
        )
        await ztunnel.connect({ADDRESS: [], AUTHORIZATION: []})
        await ztunnel.next(within=10)
        answer = await syncz(channel, system)
        assert answer.type_url == DEBUG_SYNCZ and answer.control_plane.identifier
        assert any(b"ztunnel-node-a" in r.value for r in answer.resources)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await syncz(channel, workload)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await ztunnel.close()
