"""The scenario's mesh in a Kubernetes API server, and its changes made through the API.

``MeshCluster`` has the shape of ``MeshFiles`` (``write``, ``put``, ``delete``),
so the same scenario can drive any control plane that watches that API server:
ours with ``xds serve --kubernetes``, or istiod. No kubelet runs the pods:
their ``status`` (IP, phase, readiness) is written through the status
subresource, as pilot-load does. The service accounts the pods name are
created too, so admission accepts the pods in a real cluster.

The client is deliberately small and synchronous (the harness drives it from
threads): a kubeconfig's current context with a bearer token or a client
certificate, JSON over HTTPS.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from loadtest.meshfiles import Manifest, ObjectRef, ref_of

# Cluster-scoped kinds, and the plural of every kind the generated mesh holds.
_CLUSTER_SCOPED = {"Namespace", "Node", "GatewayClass"}
_PLURALS = {
    "Namespace": "namespaces",
    "Node": "nodes",
    "Pod": "pods",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "GatewayClass": "gatewayclasses",
    "Gateway": "gateways",
    "HTTPRoute": "httproutes",
    "AuthorizationPolicy": "authorizationpolicies",
    "PeerAuthentication": "peerauthentications",
}
# Set by the API server; a manifest must not carry them.
_SERVER_FIELDS = ("uid", "creationTimestamp", "resourceVersion")


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class KubeClient:
    """JSON over HTTPS to the API server of a kubeconfig's current (or given) context."""

    def __init__(self, kubeconfig: Path, context: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        config = yaml.safe_load(kubeconfig.read_text())
        name = context or config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
        self.server = str(cluster["server"]).rstrip("/")
        self._ssl = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        elif "certificate-authority-data" in cluster:
            self._ssl.load_verify_locations(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        elif "certificate-authority" in cluster:
            self._ssl.load_verify_locations(cafile=cluster["certificate-authority"])
        self._headers = {"Accept": "application/json"}
        if "token" in user:
            self._headers["Authorization"] = f"Bearer {user['token']}"
        elif "client-certificate-data" in user or "client-certificate" in user:
            self._ssl.load_cert_chain(*self._client_cert_files(user))

    @staticmethod
    def _client_cert_files(user: dict[str, Any]) -> tuple[str, str]:
        if "client-certificate" in user:
            return user["client-certificate"], user["client-key"]
        directory = Path(tempfile.mkdtemp(prefix="loadtest-kube-"))
        cert, key = directory / "client.crt", directory / "client.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        return str(cert), str(key)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={**self._headers, "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=60) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None


def collection_path(kind: str, api_version: str, namespace: str) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = _PLURALS[kind]
    return (
        f"{base}/{plural}" if kind in _CLUSTER_SCOPED else f"{base}/namespaces/{namespace}/{plural}"
    )


class MeshCluster:
    """The mesh as API objects; ``put``/``delete`` return when the API server has the change."""

    def __init__(self, client: KubeClient, parallel: int = 16) -> None:
        self.client = client
        self._parallel = parallel
        self._objects: dict[ObjectRef, Manifest] = {}
        self.writes = 0

    def write(self, manifests: Iterable[Manifest]) -> None:
        """Create the mesh: cluster-scoped objects and namespaces first, then the rest."""
        manifests = list(manifests)
        accounts = {
            (m["metadata"]["namespace"], m["spec"].get("serviceAccountName", "default"))
            for m in manifests
            if m["kind"] == "Pod"
        }
        first = [m for m in manifests if m["kind"] in _CLUSTER_SCOPED]
        rest = [m for m in manifests if m["kind"] not in _CLUSTER_SCOPED]
        service_accounts = [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": namespace},
            }
            for namespace, name in sorted(accounts)
        ]
        with ThreadPoolExecutor(self._parallel) as pool:
            for batch in (first, service_accounts, rest):
                list(pool.map(self._create, batch))

    def get(self, ref: ObjectRef) -> Manifest | None:
        return self._objects.get(ref)

    def put(self, manifest: Manifest) -> float:
        """Create or replace one object (and its status)."""
        ref = ref_of(manifest)
        if ref not in self._objects:
            self._create(manifest)
            return time.monotonic()
        path = self._path(manifest)
        current = self.client.request("GET", path)
        body = _for_api(manifest)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.client.request("PUT", path, body)
        applied_at = time.monotonic()
        # A status write only when the status changed: a relabel is complete (and already
        # pushed, with a short debounce) once the PUT is accepted, so counting from a no-op
        # status write after it would date the change after proxies had it.
        status = manifest.get("status")
        if (
            status
            and status != self._objects[ref].get("status")
            and manifest["kind"] not in ("Service", "Namespace")
        ):
            self.client.request(
                "PATCH",
                path + "/status",
                {"status": manifest["status"]},
                "application/merge-patch+json",
            )
            applied_at = time.monotonic()
        self._objects[ref] = manifest
        self.writes += 1
        return applied_at

    def delete(self, ref: ObjectRef) -> float:
        manifest = self._objects.pop(ref)
        # No kubelet confirms a pod's termination: delete at once.
        self.client.request(
            "DELETE",
            self._path(manifest),
            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
        )
        self.writes += 1
        return time.monotonic()

    def _create(self, manifest: Manifest) -> None:
        kind, namespace, _ = ref_of(manifest)
        path = collection_path(kind, manifest["apiVersion"], namespace)
        try:
            self.client.request("POST", path, _for_api(manifest))
        except ApiError as error:
            if error.status != 409:
                raise
            if manifest["kind"] not in _CLUSTER_SCOPED | {"ServiceAccount"}:
                raise RuntimeError(
                    f"{kind} {namespace}/{manifest['metadata']['name']} already "
                    "exists: load the mesh into a cluster without it"
                ) from None
        if manifest.get("status") and kind not in ("Service", "Namespace", "Node"):
            self.client.request(
                "PATCH",
                self._path(manifest) + "/status",
                {"status": manifest["status"]},
                "application/merge-patch+json",
            )
        if kind != "ServiceAccount":
            self._objects[ref_of(manifest)] = manifest
        self.writes += 1

    @staticmethod
    def _path(manifest: Manifest) -> str:
        kind, namespace, name = ref_of(manifest)
        return f"{collection_path(kind, manifest['apiVersion'], namespace)}/{name}"


def _for_api(manifest: Manifest) -> Manifest:
    body = json.loads(json.dumps(manifest))
    for key in _SERVER_FIELDS:
        body["metadata"].pop(key, None)
    body.pop("status", None)
    return dict(body)
