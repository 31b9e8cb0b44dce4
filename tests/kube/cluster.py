"""A real Kubernetes API server for the tests: etcd + kube-apiserver on loopback.

The binaries come from ``tests/kube/build.sh`` (built from Go modules, cached per
machine). There is no controller-manager, scheduler or kubelet: tests create
what those would (Nodes, EndpointSlices, pod status) themselves, and use fresh
namespace names because namespace deletion never finishes without the
namespace controller.

``Cluster.api`` is a small synchronous client for test setup (admin token); the
code under test talks to the server through the kubeconfig, like a user would.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ..helpers import free_port

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "admin-token-for-tests"
# A user with no RBAC grants of its own; tests bind it to exactly what they need.
LIMITED_USER = "xds-limited"
LIMITED_TOKEN = "limited-token-for-tests"
# A second user without grants, for the RBAC the README documents.
DOCUMENTED_USER = "xds-documented"
DOCUMENTED_TOKEN = "documented-token-for-tests"
SERVICE_CIDR = "10.96.0.0/12"
ISSUER = "https://kubernetes.default.svc.cluster.local"


# End etcd and the API server when the test run ends, however it ends (a killed pytest
# must not leave them behind): PR_SET_PDEATHSIG, set by setpriv before it execs them.
# Not a preexec_fn: Python code (let alone a dlopen) in a child forked from this process,
# whose gRPC threads hold locks, can hang before exec -- CI once saw a restarted API
# server that never started.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


def build() -> Path:
    """The cache directory with bin/ and crds/, building it first if needed (~5 min once)."""
    result = subprocess.run(
        ["bash", str(HERE / "build.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"tests/kube/build.sh failed:\n{result.stderr[-5000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass
class Api:
    """Synchronous JSON over HTTPS to the API server, for test setup."""

    server: str
    token: str
    context: ssl.SSLContext

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": content_type,
            },
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=timeout) as reply:
                raw = reply.read()
                is_json = reply.headers.get_content_type() == "application/json"
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(raw) if raw and is_json else raw.decode()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, obj: Mapping[str, Any]) -> Any:
        return self.request("POST", collection_path(obj), obj)

    def replace(self, obj: Mapping[str, Any]) -> Any:
        return self.request("PUT", object_path(obj), obj)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, patch, "application/merge-patch+json")

    def delete(self, path: str) -> Any:
        # No kubelet confirms a pod's termination: delete at once, not gracefully.
        return self.request(
            "DELETE", path, {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        )

    def ensure(self, *objects: Mapping[str, Any]) -> None:
        """Apply each object unless it exists (shared fixtures: Nodes, CRDs, ...)."""
        for obj in objects:
            try:
                self.apply(obj)
            except ApiError as error:
                if error.status != 409:
                    raise

    def apply(self, obj: Mapping[str, Any]) -> Any:
        """Create ``obj``, then set its ``status`` as a kubelet or controller would
        (pods' IPs and readiness, Gateways' addresses): none runs here."""
        created = self.create(obj)
        status = obj.get("status")
        if status and obj.get("kind") not in ("Service", "Namespace", "Node"):
            created = self.merge_patch(object_path(obj) + "/status", {"status": status})
        return created

    def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                self.request("GET", "/readyz", timeout=2)
                return
            except (OSError, ApiError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# Plural resource names of the kinds tests create (the API server needs the plural).
PLURALS = {
    "Namespace": "namespaces",
    "Pod": "pods",
    "Service": "services",
    "Node": "nodes",
    "ServiceAccount": "serviceaccounts",
    "EndpointSlice": "endpointslices",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "CustomResourceDefinition": "customresourcedefinitions",
    "GatewayClass": "gatewayclasses",
    "Gateway": "gateways",
    "HTTPRoute": "httproutes",
    "GRPCRoute": "grpcroutes",
    "TCPRoute": "tcproutes",
    "TLSRoute": "tlsroutes",
    "ReferenceGrant": "referencegrants",
    "AuthorizationPolicy": "authorizationpolicies",
    "PeerAuthentication": "peerauthentications",
    "ServiceEntry": "serviceentries",
    "WorkloadEntry": "workloadentries",
    "VirtualService": "virtualservices",
    "DestinationRule": "destinationrules",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "Lease": "leases",
    "Deployment": "deployments",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
}
CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "CustomResourceDefinition",
    "GatewayClass",
    "ClusterRole",
    "ClusterRoleBinding",
}


def collection_path(obj: Mapping[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = PLURALS[kind]
    if kind in CLUSTER_SCOPED:
        return f"{base}/{plural}"
    namespace = obj.get("metadata", {}).get("namespace", "default")
    return f"{base}/namespaces/{namespace}/{plural}"


def object_path(obj: Mapping[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def load_documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass
class _Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    sa_key_pem: bytes
    sa_pub_pem: bytes


def _pki() -> _Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-kube-ca")])
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=2)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = serialization.Encoding.PEM
    return _Pki(
        ca.public_bytes(pem),
        cert.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        sa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


@dataclass
class Cluster:
    """etcd + kube-apiserver in ``workdir``; ``start()`` once, ``stop()`` at the end."""

    workdir: Path
    binaries: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    _etcd: subprocess.Popen[bytes] | None = None
    _apiservers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _crds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    def api(self, token: str = ADMIN_TOKEN, port: int | None = None) -> Api:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return Api(f"https://127.0.0.1:{port or self.port}", token, context)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = _pki()
        for name, data in (
            ("ca.crt", pki.ca_pem),
            ("tls.crt", pki.cert_pem),
            ("tls.key", pki.key_pem),
            ("sa.key", pki.sa_key_pem),
            ("sa.pub", pki.sa_pub_pem),
        ):
            (self.workdir / name).write_bytes(data)
        (self.workdir / "tokens.csv").write_text(
            f"{ADMIN_TOKEN},admin,admin-uid,system:masters\n"
            f"{LIMITED_TOKEN},{LIMITED_USER},limited-uid\n"
            f"{DOCUMENTED_TOKEN},{DOCUMENTED_USER},documented-uid\n"
        )
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self.write_kubeconfig(self.kubeconfig, ADMIN_TOKEN)
        self._start_etcd()
        self.start_apiserver()
        self.install_crds()

    def write_kubeconfig(self, path: Path, token: str, server: str | None = None) -> Path:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": server or self.server,
                                "certificate-authority-data": ca,
                            },
                        }
                    ],
                    "users": [{"name": "test", "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                }
            )
        )
        return path

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._etcd = subprocess.Popen(
            [
                *_DIE_WITH_PARENT,
                str(self.binaries / "bin" / "etcd"),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"default={peer}",
                "--unsafe-no-fsync",
                "--listen-metrics-urls",
                "",
                "--log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "etcd.log", "ab"),  # noqa: SIM115
        )

    def start_apiserver(self, port: int | None = None) -> int:
        """Start an API server on ``port`` (default: the main one); returns the port.

        Several may run at once against the one etcd, like an HA control plane."""
        port = port or self.port
        w = self.workdir
        log = open(w / f"apiserver-{port}.log", "ab")  # noqa: SIM115
        self._apiservers[port] = subprocess.Popen(
            [
                *_DIE_WITH_PARENT,
                str(self.binaries / "bin" / "kube-apiserver"),
                "--etcd-servers",
                f"http://127.0.0.1:{self.etcd_port}",
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(port),
                "--endpoint-reconciler-type",
                "none",
                "--tls-cert-file",
                str(w / "tls.crt"),
                "--tls-private-key-file",
                str(w / "tls.key"),
                "--token-auth-file",
                str(w / "tokens.csv"),
                "--authorization-mode",
                "RBAC",
                "--service-account-issuer",
                ISSUER,
                "--service-account-key-file",
                str(w / "sa.pub"),
                "--service-account-signing-key-file",
                str(w / "sa.key"),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                # No controller-manager creates default ServiceAccounts: pods name theirs.
                "--disable-admission-plugins",
                "ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--etcd-compaction-interval",
                "0",
                "--cert-dir",
                str(w / "certs"),
                "--audit-policy-file",
                str(w / "audit-policy.yaml"),
                "--audit-log-path",
                str(w / "audit.log"),
                "--audit-log-mode",
                "blocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        self.api(port=port).wait_ready()
        return port

    def stop_apiserver(self, port: int | None = None) -> None:
        process = self._apiservers.pop(port or self.port)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def audit_events(self, user: str) -> list[dict[str, Any]]:
        """What ``user`` asked of the API server (only ``DOCUMENTED_USER`` is audited)."""
        events = []
        for line in (self.workdir / "audit.log").read_text().splitlines():
            event = json.loads(line)
            if event.get("user", {}).get("username") == user:
                events.append(event)
        return events

    def restart_apiserver(self) -> None:
        self.stop_apiserver()
        self.start_apiserver()

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (old resourceVersions become 410 Gone)."""
        url = f"http://127.0.0.1:{self.etcd_port}"

        def post(path: str, body: Mapping[str, Any]) -> Any:
            request = urllib.request.Request(
                url + path, data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                return json.loads(reply.read())

        revision = int(
            post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
        )
        post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def crd_documents(self) -> list[dict[str, Any]]:
        if not self._crds:
            for path in sorted((self.binaries / "crds").glob("*.yaml")):
                self._crds += [
                    d
                    for d in load_documents(path.read_text())
                    if d.get("kind") == "CustomResourceDefinition"
                ]
        return self._crds

    def install_crds(
        self, names: set[str] | None = None, exclude: frozenset[str] = frozenset()
    ) -> None:
        """Install the real CRDs (all, or those named), and wait until each is served."""
        api = self.api()
        wanted = [
            d
            for d in self.crd_documents()
            if (names is None or d["metadata"]["name"] in names)
            and d["metadata"]["name"] not in exclude
        ]
        api.ensure(*wanted)
        for crd in wanted:
            self.wait_crd_served(crd)

    def wait_crd_served(self, crd: Mapping[str, Any], within: float = 30) -> None:
        """A CRD answers 404 for a moment after it is Established: list it until it works."""
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        version = next(v["name"] for v in crd["spec"]["versions"] if v.get("served"))
        api = self.api()
        deadline = time.monotonic() + within
        while True:
            try:
                api.get(f"/apis/{group}/{version}/{plural}?limit=1")
                return
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def delete_crd(self, name: str) -> None:
        self.api().delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")

    def stop(self) -> None:
        for port in list(self._apiservers):
            self.stop_apiserver(port)
        if self._etcd is not None:
            self._etcd.terminate()
            try:
                self._etcd.wait(10)
            except subprocess.TimeoutExpired:
                self._etcd.kill()
                self._etcd.wait()

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.workdir.glob("*.log"))
        )


_names = iter(range(1, 1 << 30))


# One event per request (at its end) for the user whose RBAC is under test; nothing else.
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [{DOCUMENTED_USER}]
- level: None
"""


def fresh_namespace(prefix: str = "t") -> str:
    """A namespace name not used before in this test session (deletion never finishes)."""
    return f"{prefix}-{os.getpid() % 10000}-{next(_names)}"


def running_cluster(workdir: Path) -> Iterator[Cluster]:
    cluster = Cluster(workdir, build())
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
