"""``deploy/`` and the ``Dockerfile``: consistent with each other and accepted by a real
API server (the RBAC is checked against the calls the code makes in
``tests/e2e/test_deploy_rbac.py``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from xds.sources.kubernetes.waypoints.objects import CONTROLLER_NAME, WAYPOINT_CLASS

from .conftest import REPO
from .deploy_manifests import DEPLOY, by_kind, one, rendered
from .kube.cluster import Cluster, object_path

SYSTEM = "istio-system"


def test_every_object_is_in_istio_system_or_cluster_scoped() -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "GatewayClass"}
    for obj in rendered():
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, obj["metadata"]["name"]
        else:
            assert namespace == SYSTEM, (obj["kind"], obj["metadata"]["name"])
    assert one(rendered(), "Namespace")["metadata"]["name"] == SYSTEM


def test_names_labels_ports_and_account_agree() -> None:
    objects = rendered()
    deployment = one(objects, "Deployment")
    service = one(objects, "Service")
    account = one(objects, "ServiceAccount")
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"]["labels"]

    # Named as istiod: ztunnel's default istiod.istio-system.svc:15012 works unchanged.
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == "istiod"
    assert pod_labels["app"] == "istiod"  # istioctl finds the control plane by it
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for kind in ("PodDisruptionBudget",):
        assert one(objects, kind)["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    target = one(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "istiod")

    [container] = template["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service_ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    # istiod's port names and numbers.
    assert service_ports == {
        "grpc-xds": (15010, "grpc-xds"),
        "https-dns": (15012, "https-dns"),
        "http-monitoring": (15014, "http-monitoring"),
    }
    for name, (port, target_port) in service_ports.items():
        assert container_ports[target_port] == port, name
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == container_ports["http-monitoring"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--kubernetes" in container["args"]
    assert f"--system-namespace={SYSTEM}" in container["args"]

    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert template["spec"]["securityContext"]["runAsUser"] != 0

    assert template["spec"]["serviceAccountName"] == account["metadata"]["name"]
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "istiod", "namespace": SYSTEM}
        ]
        role_kind = binding["roleRef"]["kind"]
        assert binding["roleRef"]["name"] in {
            r["metadata"]["name"] for r in by_kind(objects, role_kind)
        }

    gateway_class = one(objects, "GatewayClass")
    assert gateway_class["metadata"]["name"] == WAYPOINT_CLASS
    assert gateway_class["spec"]["controllerName"] == CONTROLLER_NAME


def test_rules_are_explicit() -> None:
    for role in by_kind(rendered(), "ClusterRole") + by_kind(rendered(), "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)


def test_kubectl_renders_what_we_read() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; deploy/ is read by tests/deploy_manifests.py")
    output = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    ours = {(o["kind"], o["metadata"]["name"]) for o in rendered()}
    theirs = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(output) if o}
    assert ours == theirs


@pytest.mark.kube
def test_the_api_server_accepts_every_object(kube_cluster: Cluster) -> None:
    """Server-side apply with ``dryRun=All``: validation, defaulting and admission run,
    nothing is stored."""
    api = kube_cluster.api()
    api.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM}})
    for obj in rendered():
        path = object_path(obj) + "?dryRun=All&fieldManager=deploy-test&fieldValidation=Strict"
        answer = api.request("PATCH", path, obj, "application/apply-patch+yaml")
        assert answer["metadata"]["name"] == obj["metadata"]["name"]


# -- the Dockerfile -------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    result = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        result.append((instruction.upper(), rest.strip()))
    return result


def test_dockerfile_pins_its_base_and_runs_as_non_root() -> None:
    instructions = _instructions()
    bases = [rest.split()[0] for instruction, rest in instructions if instruction == "FROM"]
    assert bases
    for base in bases:
        _, _, tag = base.partition(":")
        assert tag and tag != "latest", base
        assert "slim" in tag, base
    users = [rest for instruction, rest in instructions if instruction == "USER"]
    assert users, "no USER: the image would run as root"
    final_user = users[-1].split(":")[0]
    assert final_user not in ("root", "0")
    # The user is set after the last FROM: it applies to the runtime stage.
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    last_user = max(i for i, (ins, _) in enumerate(instructions) if ins == "USER")
    assert last_user > last_from
    deployment = one(rendered(), "Deployment")
    uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert final_user == str(uid)


def test_dockerfile_installs_the_package_as_a_wheel() -> None:
    instructions = _instructions()
    runs = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert "pip wheel" in runs and ".whl" in runs
    entrypoint = next(rest for instruction, rest in instructions if instruction == "ENTRYPOINT")
    assert entrypoint == '["xds"]'
    copied = [
        rest.split()[0]
        for instruction, rest in instructions
        if instruction == "COPY" and not rest.startswith("--from")
    ]
    for source in copied:
        assert (REPO / source).exists(), source  # builds from the repository root


def _docker_engine() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _docker_engine(), reason="no Docker engine on this machine")
def test_the_image_builds() -> None:  # pragma: no cover - needs a container runtime
    subprocess.run(
        ["docker", "build", "-t", "xds-ambient:test", str(REPO)], check=True, timeout=900
    )
