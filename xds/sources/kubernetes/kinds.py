"""Which API resources hold the modelled kinds, as the API server says (discovery).

Versions are not hard-coded: for each group the preferred version is tried
first, then the others, and the first one that serves a kind (with list and
watch) is used. That follows clusters through API graduations (TCPRoute
v1alpha2 -> v1, ...) without a release of ours; the parser reads any version.
A kind whose group or resource is absent (a CRD not installed) is reported as
missing, for the source to check again later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xds.model.core import Secret
from xds.model.meta import KubeObject
from xds.model.parse import MODEL_KINDS
from xds.sources.kubernetes.api import ApiError, KubeApi, Params

# istiod's SecretsFieldSelector: Helm releases and service-account tokens are the two
# common, large kinds of Secret that are never TLS credentials.
SECRET_FIELD_SELECTOR = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"


@dataclass(frozen=True, slots=True)
class ApiResource:
    """Where one modelled kind is listed and watched."""

    model: type[KubeObject]
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def path(self) -> str:
        """The cluster-wide collection: every namespace at once."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{prefix}/{self.plural}"

    @property
    def name(self) -> str:
        """``pods``, ``httproutes.gateway.networking.k8s.io``: for logs and metrics."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def watched_models() -> tuple[type[KubeObject], ...]:
    return MODEL_KINDS


def list_params(model: type[KubeObject]) -> Params:
    """Extra parameters of the list and watch of ``model``'s collection."""
    if model is Secret:
        return (("fieldSelector", SECRET_FIELD_SELECTOR),)
    return ()


def find_resource(
    model: type[KubeObject], group_version: str, resources: Iterable[Mapping[str, Any]]
) -> ApiResource | None:
    """The resource for ``model`` in one group-version's discovery document, if served."""
    group, _, version = group_version.rpartition("/")
    for resource in resources:
        name = str(resource.get("name") or "")
        verbs = set(resource.get("verbs") or ())
        if resource.get("kind") == model.kind and "/" not in name and {"list", "watch"} <= verbs:
            return ApiResource(model, group, version, name, bool(resource.get("namespaced")))
    return None


async def discover(
    api: KubeApi, models: Iterable[type[KubeObject]]
) -> tuple[dict[type[KubeObject], ApiResource], set[type[KubeObject]]]:
    """The resources of ``models`` the server has, and the models it lacks.

    Raises ``ApiError`` when discovery itself fails (server unreachable)."""
    by_group: dict[str, list[type[KubeObject]]] = {}
    for model in models:
        by_group.setdefault(model.api_group, []).append(model)
    found: dict[type[KubeObject], ApiResource] = {}
    for group, wanted in by_group.items():
        for group_version in await _group_versions(api, group):
            pending = [m for m in wanted if m not in found]
            if not pending:
                break
            prefix = f"/apis/{group_version}" if group else f"/api/{group_version}"
            try:
                document = await api.get(prefix)
            except ApiError as error:
                if error.not_found:  # removed between the two requests
                    continue
                raise
            for model in pending:
                resource = find_resource(model, group_version, document.get("resources") or ())
                if resource is not None:
                    found[model] = resource
    missing = {m for models_ in by_group.values() for m in models_ if m not in found}
    return found, missing


async def _group_versions(api: KubeApi, group: str) -> list[str]:
    """``group/version`` strings, preferred first; empty when the group is not served."""
    if not group:
        return ["v1"]
    try:
        document = await api.get(f"/apis/{group}")
    except ApiError as error:
        if error.not_found:
            return []
        raise
    preferred = (document.get("preferredVersion") or {}).get("groupVersion")
    versions = [str(v.get("groupVersion")) for v in document.get("versions") or ()]
    if preferred in versions:
        versions.remove(preferred)
        versions.insert(0, preferred)
    return versions
