"""Which Authorization names a workload lists in ``authorization_policies`` (§6.5).

ztunnel applies GLOBAL and NAMESPACE policies by itself; it finds
WORKLOAD_SELECTOR policies only through this list. istiod's order: the
selector AuthorizationPolicies that select the workload (its namespace or the
root namespace), sorted; then the PeerAuthentication-derived names, sorted.
(The implicit allow-from-waypoint policies that follow them upstream are
behind a flag that is off by default, and are not generated here.)
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from xds.model.frozen import FrozenMap
from xds.model.security import AuthorizationPolicy, PeerAuthentication
from xds.translate.ztunnel.authorization import is_for_ztunnel
from xds.translate.ztunnel.peer_authentication import workload_policy_keys

LabelItems = frozenset[tuple[str, str]]


def label_items(labels: Mapping[str, str]) -> ItemsView[str, str]:
    """Labels as a plain dict's items view: ``selector_items <= label_items(labels)`` is
    then a C-level subset test, several times faster than looking labels up one by one,
    which matters when every pod is checked against every selector of its namespace."""
    plain = labels.to_dict() if isinstance(labels, FrozenMap) else dict(labels)
    return plain.items()


def selector_items(selector: Mapping[str, str]) -> LabelItems:
    return frozenset(selector.items())


@dataclass(frozen=True, slots=True)
class SelectorPolicy:
    key: str
    selector: LabelItems


@dataclass
class PolicyIndex:
    """The policies workloads attach to, grouped by namespace.

    Rebuilt per namespace when an AuthorizationPolicy or PeerAuthentication
    there changes (``set_authorization_policies`` / ``set_peer_authentications``).
    """

    root_namespace: str
    selector_policies: dict[str, list[SelectorPolicy]] = field(default_factory=dict)
    peer_authentications: dict[str, Sequence[PeerAuthentication]] = field(default_factory=dict)

    def set_authorization_policies(
        self, namespace: str, policies: Iterable[AuthorizationPolicy]
    ) -> None:
        attached = sorted(
            (
                SelectorPolicy(f"{p.namespace}/{p.name}", selector_items(p.selector))
                for p in policies
                # An empty selector is workload scope but selects nothing.
                if p.selector and is_for_ztunnel(p)
            ),
            key=lambda s: s.key,
        )
        if attached:
            self.selector_policies[namespace] = attached
        else:
            self.selector_policies.pop(namespace, None)

    def set_peer_authentications(
        self, namespace: str, policies: Iterable[PeerAuthentication]
    ) -> None:
        listed = tuple(policies)
        if listed:
            self.peer_authentications[namespace] = listed
        else:
            self.peer_authentications.pop(namespace, None)

    @property
    def has_peer_authentications(self) -> bool:
        return bool(self.peer_authentications)

    def for_workload(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        items = label_items(labels)
        names = [
            policy.key
            for ns in _local_and_root(namespace, self.root_namespace)
            for policy in self.selector_policies.get(ns, ())
            if policy.selector <= items
        ]
        names.sort()
        if self.peer_authentications:
            names.extend(
                workload_policy_keys(
                    namespace, labels, self.root_namespace, self.peer_authentications
                )
            )
        return names


def _local_and_root(namespace: str, root_namespace: str) -> tuple[str, ...]:
    return (namespace,) if namespace == root_namespace else (namespace, root_namespace)
