"""What every Kubernetes object in the model shares: identity, metadata, selectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import ClassVar

from xds.model.frozen import EMPTY_LABELS, Labels, is_subset

IPAddress = IPv4Address | IPv6Address
"""A parsed IP; ``.packed`` gives the raw 4 or 16 bytes the workload API wants."""


def parse_ip(text: str) -> IPAddress | None:
    """The IP in ``text``, or ``None`` when it is not one."""
    try:
        return ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """Identity of an object in the mesh: kind, namespace ("" when cluster-scoped), name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """``metadata.ownerReferences[]``: used to derive a pod's workload name."""

    kind: str
    name: str
    api_version: str = ""
    uid: str = ""
    controller: bool = False


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """The part of ``metadata`` the control plane reads.

    ``resourceVersion``, ``managedFields`` and the like are left out on
    purpose: an update that only touches them is not a change for us.
    ``creation_timestamp`` is kept because several rules pick "the oldest"
    object (PeerAuthentication, ServiceEntry hostname conflicts); manifests
    without one sort first, then by name.
    """

    name: str
    namespace: str = ""
    uid: str = ""
    labels: Labels = EMPTY_LABELS
    annotations: Labels = EMPTY_LABELS
    creation_timestamp: datetime | None = None
    generate_name: str = ""
    owner_references: tuple[OwnerReference, ...] = ()

    @property
    def controller(self) -> OwnerReference | None:
        """The owner reference marked ``controller: true``, if any."""
        for owner in self.owner_references:
            if owner.controller:
                return owner
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class KubeObject:
    """Base of every modelled kind. Subclasses set ``kind``, ``api_group`` and ``namespaced``."""

    kind: ClassVar[str]
    api_group: ClassVar[str]
    namespaced: ClassVar[bool] = True

    meta: ObjectMeta

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def labels(self) -> Labels:
        return self.meta.labels

    @property
    def annotations(self) -> Labels:
        return self.meta.annotations

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.meta.namespace, self.meta.name)


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    """One ``matchExpressions`` entry of a Kubernetes label selector."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case SelectorOperator.IN:
                return labels.get(self.key) in self.values
            case SelectorOperator.NOT_IN:
                return labels.get(self.key) not in self.values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A Kubernetes ``metav1.LabelSelector``; the empty selector matches everything."""

    match_labels: Labels = EMPTY_LABELS
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return is_subset(self.match_labels, labels) and all(
            requirement.matches(labels) for requirement in self.match_expressions
        )

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions
