"""The translator's memory of derived state: Services by hostname, and EndpointSlice refs.

Both answer "what else must be rebuilt?" cheaply when one object changes:
``ServiceIndex`` re-runs hostname selection only for the hostnames a source
touched and reports which winners changed; ``SliceIndex`` maps pods to the
EndpointSlices that name them in a ``targetRef``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xds.model.core import EndpointSlice, Pod
from xds.model.meta import ObjectKey
from xds.translate.ztunnel.services import Selection, ServiceInfo, select_services

_NO_INFOS: Mapping[str, ServiceInfo] = {}


@dataclass(frozen=True, slots=True)
class WinnerChange:
    """One namespace's winner for one hostname before and after a change."""

    hostname: str
    namespace: str
    old: ServiceInfo | None
    new: ServiceInfo | None

    @property
    def affects_endpoints(self) -> bool:
        """Whether workloads listing this Service must be rebuilt."""
        if self.old is None or self.new is None:
            return True
        return self.old.endpoint_view() != self.new.endpoint_view()


@dataclass
class ServiceIndex:
    """ServiceInfos per source object, and the per-hostname selection among them."""

    _by_source: dict[ObjectKey, dict[str, ServiceInfo]] = field(default_factory=dict)
    _by_hostname: dict[str, dict[ObjectKey, ServiceInfo]] = field(default_factory=dict)
    _selections: dict[str, Selection] = field(default_factory=dict)
    _winners: dict[str, dict[str, ServiceInfo]] = field(default_factory=dict)

    def replace(self, source: ObjectKey, infos: Iterable[ServiceInfo]) -> set[str]:
        """Set ``source``'s infos (none when it was deleted); returns the hostnames touched."""
        old = self._by_source.pop(source, {})
        new: dict[str, ServiceInfo] = {}
        for info in infos:
            new.setdefault(info.hostname, info)  # a host listed twice counts once
        for hostname in old:
            group = self._by_hostname[hostname]
            del group[source]
            if not group:
                del self._by_hostname[hostname]
        for hostname, info in new.items():
            self._by_hostname.setdefault(hostname, {})[source] = info
        if new:
            self._by_source[source] = new
        return set(old) | set(new)

    def reselect(self, hostnames: Iterable[str]) -> list[WinnerChange]:
        """Recompute the selection of ``hostnames``; report winners that changed."""
        changes = []
        for hostname in hostnames:
            old = self._selections.pop(hostname, None)
            old_winners = old.winners if old is not None else _NO_INFOS
            group = self._by_hostname.get(hostname)
            new = select_services(group.values()) if group else None
            new_winners = new.winners if new is not None else _NO_INFOS
            if new is not None:
                self._selections[hostname] = new
            for namespace in set(old_winners) | set(new_winners):
                before, after = old_winners.get(namespace), new_winners.get(namespace)
                if after is None:
                    bucket = self._winners.get(namespace)
                    if bucket is not None:
                        bucket.pop(hostname, None)
                        if not bucket:
                            del self._winners[namespace]
                else:
                    self._winners.setdefault(namespace, {})[hostname] = after
                if before is not after:
                    changes.append(WinnerChange(hostname, namespace, before, after))
        return changes

    def selection(self, hostname: str) -> Selection | None:
        return self._selections.get(hostname)

    def winners_in(self, namespace: str) -> Mapping[str, ServiceInfo]:
        """Hostname -> the Service clients in ``namespace`` get for it (own namespace only)."""
        return self._winners.get(namespace, _NO_INFOS)

    def infos_of(self, source: ObjectKey) -> Iterable[ServiceInfo]:
        return self._by_source.get(source, _NO_INFOS).values()

    def surviving(self, source: ObjectKey) -> list[ServiceInfo]:
        """The infos of ``source`` that won their hostname in their namespace."""
        winners = self.winners_in(source.namespace)
        return [info for info in self.infos_of(source) if winners.get(info.hostname) is info]

    def sources_of(self, hostname: str) -> Iterable[ObjectKey]:
        return self._by_hostname.get(hostname, {}).keys()

    def hostnames(self) -> Iterable[str]:
        return self._by_hostname.keys()


def _pod_refs(endpoint_slice: EndpointSlice) -> set[tuple[str, str, str]]:
    """``(namespace, name, uid)`` of every pod the slice names."""
    refs = set()
    for endpoint in endpoint_slice.endpoints:
        ref = endpoint.target_ref
        if ref is not None and ref.kind == Pod.kind:
            refs.add((ref.namespace or endpoint_slice.namespace, ref.name, ref.uid))
    return refs


@dataclass
class SliceIndex:
    """Pods named by EndpointSlice ``targetRef``s, for Services without a selector."""

    _slices_by_pod: dict[tuple[str, str], set[ObjectKey]] = field(default_factory=dict)

    def update(
        self, key: ObjectKey, old: EndpointSlice | None, new: EndpointSlice | None
    ) -> set[tuple[str, str]]:
        """Re-index one slice; returns the ``(namespace, name)`` of pods whose attachment
        through it may have changed.

        A slice's attachment of a pod depends only on the pod being named and on
        the slice's Service, so while the Service stays the same only pods added
        or dropped count: endpoint readiness churn rebuilds nobody.
        """
        old_refs = _pod_refs(old) if old is not None else set()
        new_refs = _pod_refs(new) if new is not None else set()
        old_pods = {(namespace, name) for namespace, name, _ in old_refs}
        new_pods = {(namespace, name) for namespace, name, _ in new_refs}
        for pod in old_pods - new_pods:
            bucket = self._slices_by_pod.get(pod)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._slices_by_pod[pod]
        for pod in new_pods:
            self._slices_by_pod.setdefault(pod, set()).add(key)
        same_service = old is not None and new is not None and old.service_name == new.service_name
        changed = old_refs ^ new_refs if same_service else old_refs | new_refs
        return {(namespace, name) for namespace, name, _ in changed}

    def slices_naming(self, namespace: str, name: str) -> Iterable[ObjectKey]:
        return sorted(self._slices_by_pod.get((namespace, name), ()))
