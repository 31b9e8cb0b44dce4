"""credentialName in a cluster: a waypoint gets the private key of a Secret of its namespace
only if Kubernetes RBAC lets its service account list that namespace's Secrets (istiod asks
the same SubjectAccessReview); CA bundles it always gets; other namespaces never."""

from __future__ import annotations

import pytest

from ..kube.cluster import Cluster, fresh_namespace
from ..kube.objects import apply_all, namespace, service_account
from .kube_plane import kube_plane, request_token, secret_names, tls_channel, waypoint_client
from .support import gateway

pytestmark = pytest.mark.kube

KEY = "kubernetes://partner-client"
CA = "kubernetes://partner-client-cacert"


def tls_secret(ns: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": "chain", "tls.key": "key", "ca.crt": "bundle"},
    }


def may_list_secrets(ns: str, account: str) -> list[dict[str, object]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "read", "namespace": ns},
    }
    return [
        {
            **role,
            "kind": "Role",
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        },
        {
            **role,
            "kind": "RoleBinding",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
    ]


async def test_private_keys_follow_rbac_ca_bundles_do_not(kube_cluster: Cluster) -> None:
    api = kube_cluster.api()
    ns, other = fresh_namespace("creds"), fresh_namespace("creds-other")
    apply_all(
        api,
        namespace(ns),
        namespace(other),
        service_account(ns, "plain"),
        service_account(ns, "trusted"),
        gateway(ns, "plain"),
        gateway(ns, "trusted"),
        tls_secret(ns, "partner-client"),
        tls_secret(other, "elsewhere"),
        *may_list_secrets(ns, "trusted"),
    )
    async with kube_plane(kube_cluster) as plane, tls_channel(plane) as channel:
        wanted = [KEY, CA, "kubernetes://elsewhere", "kubernetes://elsewhere-cacert"]
        plain = waypoint_client(channel, ns, "plain", request_token(api, ns, "plain"))
        assert await secret_names(plain, wanted) == {CA}
        trusted = waypoint_client(channel, ns, "trusted", request_token(api, ns, "trusted"))
        assert await secret_names(trusted, wanted) == {KEY, CA}
        await plain.close()
        await trusted.close()
