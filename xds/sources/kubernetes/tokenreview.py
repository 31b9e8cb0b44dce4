"""Bearer tokens checked by the API server: ``authentication.k8s.io/v1`` TokenReview.

istiod's rules (``security/pkg/server/ca/authenticate/kubeauth``,
``security/pkg/k8s/tokenreview``): the review carries the accepted audiences
(``istio-ca``); the token must be authenticated, belong to the group
``system:serviceaccounts`` and name ``system:serviceaccount:<ns>:<sa>``. A
``clusterid`` header naming another cluster is refused (we know one cluster).
Pod-bound tokens name their pod (and, on Kubernetes 1.32+, its node); the node
is what lets a ztunnel ask for certificates of the pods on that node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from xds.security.authn import AuthenticationError, ReviewedToken
from xds.sources.kubernetes.api import ApiError, KubeApi

log = logging.getLogger("xds.kube")

TOKEN_REVIEWS: Final = "/apis/authentication.k8s.io/v1/tokenreviews"
SERVICE_ACCOUNTS_GROUP: Final = "system:serviceaccounts"
_USER_PREFIX: Final = "system:serviceaccount:"
POD_NAME_EXTRA: Final = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA: Final = "authentication.kubernetes.io/pod-uid"
NODE_NAME_EXTRA: Final = "authentication.kubernetes.io/node-name"

PodNode = Callable[[str, str, str], str | None]
"""(namespace, pod name, pod uid) -> the node that pod runs on, if known."""


class KubeTokenReviewer:
    """A ``TokenReviewer`` that asks the API server the source is connected to."""

    def __init__(self, api: KubeApi, *, cluster_id: str, pod_node: PodNode | None = None) -> None:
        self._api = api
        self._cluster_id = cluster_id
        self._pod_node = pod_node

    async def review(self, token: str, audiences: Sequence[str], cluster_id: str) -> ReviewedToken:
        if cluster_id and cluster_id != self._cluster_id:
            raise AuthenticationError(
                f"client claims to be in cluster {cluster_id!r}, but this control plane "
                f"knows only cluster {self._cluster_id!r}"
            )
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": list(audiences)},
        }
        try:
            review = await self._api.create(TOKEN_REVIEWS, body)
        except ApiError as error:
            # Our own problem (RBAC, API server down), not the caller's: log it.
            log.warning(
                "TokenReview failed", extra={"status": error.status, "reason": error.reason}
            )
            raise AuthenticationError(
                f"the token could not be reviewed (API server: {error.status} {error.reason})"
            ) from None
        return self._result(review.get("status") or {}, audiences)

    def _result(self, status: Mapping[str, Any], audiences: Sequence[str]) -> ReviewedToken:
        if status.get("error"):
            raise AuthenticationError(f"the token was not accepted: {status['error']}")
        if not status.get("authenticated"):
            raise AuthenticationError(
                "the token was not accepted (unknown, expired, revoked, "
                f"or not for audience {', '.join(audiences)})"
            )
        user = status.get("user") or {}
        username = str(user.get("username") or "")
        if SERVICE_ACCOUNTS_GROUP not in (user.get("groups") or ()):
            raise AuthenticationError(f"{username or 'the caller'} is not a service account")
        namespace, _, account = username.removeprefix(_USER_PREFIX).partition(":")
        if not username.startswith(_USER_PREFIX) or not namespace or not account:
            raise AuthenticationError(f"unexpected service account user name {username!r}")
        extra = user.get("extra") or {}
        pod_name, pod_uid, node = (
            _first(extra, POD_NAME_EXTRA),
            _first(extra, POD_UID_EXTRA),
            _first(extra, NODE_NAME_EXTRA),
        )
        if node is None and pod_name and self._pod_node is not None:
            # Before Kubernetes 1.32 tokens name the pod but not its node.
            node = self._pod_node(namespace, pod_name, pod_uid or "")
        return ReviewedToken(namespace, account, pod_name=pod_name, pod_uid=pod_uid, node=node)


def _first(extra: Mapping[str, Any], key: str) -> str | None:
    values = extra.get(key) or ()
    return str(values[0]) if values else None
