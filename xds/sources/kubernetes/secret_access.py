"""Whether a service account may read its namespace's Secrets: ``authorization.k8s.io/v1``
SubjectAccessReview, as istiod asks before it serves a proxy the private key of a
``credentialName`` (``pilot/pkg/credentials/kube/secrets.go``: verb ``list``, resource
``secrets``, the proxy's namespace). Answers are cached as istiod caches them: a
refusal for a minute, a grant for five.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from xds.security.identity import Identity
from xds.sources.kubernetes.api import KubeApi

log = logging.getLogger("xds.kube")

SUBJECT_ACCESS_REVIEWS: Final = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
DENIED_TTL: Final = 60.0
ALLOWED_TTL: Final = 300.0


class KubeSecretAccess:
    def __init__(self, api: KubeApi, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[bool, float]] = {}

    async def may_read_keys(self, identity: Identity) -> bool:
        """Raises ``ApiError`` when the API server cannot answer (the caller fails closed)."""
        key = (identity.namespace, identity.service_account)
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        user = f"system:serviceaccount:{identity.namespace}:{identity.service_account}"
        review = await self._api.create(
            SUBJECT_ACCESS_REVIEWS,
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    # What the API server would put in a token of that account: RBAC
                    # bindings to the service-account groups count too.
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{identity.namespace}",
                        "system:authenticated",
                    ],
                    "resourceAttributes": {
                        "namespace": identity.namespace,
                        "verb": "list",
                        "resource": "secrets",
                    },
                },
            },
        )
        status = review.get("status") or {}
        allowed = bool(status.get("allowed"))
        if not allowed:
            log.info(
                "identity may not read its namespace's Secrets: serving it CA bundles only",
                extra={"identity": identity.uri, "reason": status.get("reason") or ""},
            )
        self._answers[key] = (allowed, now + (ALLOWED_TTL if allowed else DENIED_TTL))
        return allowed
