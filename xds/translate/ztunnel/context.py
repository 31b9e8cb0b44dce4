"""Mesh-wide values every ztunnel resource depends on, resolved once per translation."""

from __future__ import annotations

from dataclasses import dataclass

from xds.model.mesh import Mesh
from xds.translate.binding import local_network

_DEFAULT_TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class Context:
    """What istiod takes from its flags, MeshConfig and the system namespace.

    When any of these changes, every resource may change: the translator then
    rebuilds everything (a rare event: a MeshConfig reload or a relabelled root
    namespace).
    """

    cluster_id: str
    network: str
    trust_domain: str
    """The value for ``Workload.trust_domain``: ``""`` for ``cluster.local``, since
    ztunnel applies that default itself and istiod leaves it out."""
    domain_suffix: str
    root_namespace: str

    @classmethod
    def of(cls, mesh: Mesh) -> Context:
        config = mesh.config
        trust_domain = config.trust_domain
        return cls(
            cluster_id=config.cluster_id,
            network=local_network(mesh),
            trust_domain="" if trust_domain == _DEFAULT_TRUST_DOMAIN else trust_domain,
            domain_suffix=config.domain_suffix,
            root_namespace=config.root_namespace,
        )

    def service_hostname(self, name: str, namespace: str) -> str:
        return f"{name}.{namespace}.svc.{self.domain_suffix}"
