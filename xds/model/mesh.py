"""The mesh: every known object, indexed for the translators, plus mesh-wide settings.

``MeshStore`` is owned by the sources, which call ``apply``; everything else
reads it through the ``Mesh`` protocol. ``apply`` reports a ``ChangeSet``
holding only keys whose object really changed (compared with ``==``), so an
unchanged re-list or a file touched without edits causes no work downstream.

The store is not thread-safe: it lives on the event loop, and translators
read it synchronously between two ``apply`` calls.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from xds.model.core import Namespace, Pod, Service
from xds.model.frozen import FrozenMap, empty_map
from xds.model.meta import IPAddress, KubeObject, ObjectKey

T = TypeVar("T", bound=KubeObject)
B = TypeVar("B", bound=Hashable)


@dataclass(frozen=True, slots=True)
class ExtAuthzProvider:
    """An external authorizer of ``meshConfig.extensionProviders`` (gRPC or HTTP), which
    CUSTOM AuthorizationPolicies name. ``service`` is ``[namespace/]hostname``."""

    name: str
    grpc: bool
    service: str
    port: int
    timeout: timedelta | None = None
    fail_open: bool = False
    status_on_error: int | None = None
    path_prefix: str = ""
    include_request_headers_in_check: tuple[str, ...] = ()
    include_additional_headers_in_check: FrozenMap[str, str] = field(default_factory=empty_map)
    headers_to_upstream_on_allow: tuple[str, ...] = ()
    headers_to_downstream_on_deny: tuple[str, ...] = ()
    headers_to_downstream_on_allow: tuple[str, ...] = ()

    @property
    def hostname(self) -> str:
        return self.service.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class FileAccessLogProvider:
    """An ``envoyFileAccessLog`` provider: a path and a text format (``None``: Istio's)."""

    name: str
    path: str = "/dev/stdout"
    text_format: str | None = None


# Istio's built-in provider, which Telemetry can name without the mesh config defining it.
DEFAULT_ACCESS_LOG = FileAccessLogProvider("envoy")


@dataclass(frozen=True, slots=True)
class ProxyDefaults:
    """meshConfig.defaultConfig: what applies to the waypoint Deployments we create (the
    rest of istiod's ProxyConfig is for pilot-agent and sidecars, and is reported)."""

    discovery_address: str | None = None
    """``host:port`` the waypoints' Envoy connects to (default: istiod.<system ns>.svc:15012)."""
    concurrency: int | None = None
    """Envoy worker threads (``--concurrency``); unset or 0: one per CPU."""
    drain_duration: timedelta | None = None
    """How long Envoy drains listeners on shutdown (``--drain-time-s``)."""


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """Mesh-wide settings the translation depends on (istiod's MeshConfig and flags)."""

    trust_domain: str = "cluster.local"
    """SPIFFE trust domain of workload identities (meshConfig.trustDomain)."""
    domain_suffix: str = "cluster.local"
    """DNS suffix of Service hostnames: ``<name>.<ns>.svc.<suffix>``."""
    root_namespace: str = "istio-system"
    """Namespace whose policies apply mesh-wide (meshConfig.rootNamespace)."""
    cluster_id: str = "Kubernetes"
    """Cluster name used in workload uids (istiod's CLUSTER_ID)."""
    network: str = ""
    """Default network of workloads; overridden by the root namespace's network label."""
    extension_providers: tuple[ExtAuthzProvider, ...] = ()
    """External authorizers (meshConfig.extensionProviders), by name."""
    access_log_providers: tuple[FileAccessLogProvider, ...] = ()
    """File access-log providers (meshConfig.extensionProviders), by name."""
    access_log_file: str = ""
    """meshConfig.accessLogFile: every proxy logs there unless a Telemetry says otherwise."""
    access_log_format: str | None = None
    proxy_defaults: ProxyDefaults = field(default_factory=ProxyDefaults)
    """meshConfig.defaultConfig, as far as waypoints use it."""

    def access_log_provider(self, name: str) -> FileAccessLogProvider | None:
        for provider in self.access_log_providers:
            if provider.name == name:
                return provider
        return DEFAULT_ACCESS_LOG if name == DEFAULT_ACCESS_LOG.name else None


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """What one or more ``apply`` calls really changed.

    ``previous`` holds the object as it was before the change, for every
    updated or deleted key, so that consumers can also invalidate what the old
    version affected (e.g. the Services a pod's old labels matched).
    """

    added: frozenset[ObjectKey] = frozenset()
    updated: frozenset[ObjectKey] = frozenset()
    deleted: frozenset[ObjectKey] = frozenset()
    previous: FrozenMap[ObjectKey, KubeObject] = field(default_factory=empty_map)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.deleted)

    @property
    def keys(self) -> frozenset[ObjectKey]:
        """Every key that changed in any way."""
        return self.added | self.updated | self.deleted

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds that had any change, for cheap "does this concern me?" checks."""
        return frozenset(key.kind for key in self.keys)

    def merge(self, later: ChangeSet) -> ChangeSet:
        """The net effect of ``self`` followed by ``later`` (used when debouncing).

        Add-then-delete cancels out; delete-then-add is an update; the
        ``previous`` object is always the one from before ``self``.
        """
        added, updated, deleted = set(self.added), set(self.updated), set(self.deleted)
        previous = dict(self.previous)
        for key in later.added:
            if key in deleted:
                deleted.discard(key)
                updated.add(key)
            else:
                added.add(key)
        for key in later.updated:
            if key not in added:
                updated.add(key)
                previous.setdefault(key, later.previous[key])
        for key in later.deleted:
            if key in added:
                added.discard(key)  # it never existed as far as consumers know
            else:
                updated.discard(key)
                deleted.add(key)
                previous.setdefault(key, later.previous[key])
        for key in added:
            previous.pop(key, None)
        return ChangeSet(
            frozenset(added), frozenset(updated), frozenset(deleted), FrozenMap(previous)
        )


class Mesh(Protocol):
    """Read-only view of the mesh, as translators see it.

    Collections returned are live views or fresh lists: do not mutate them,
    and do not keep them across an ``apply``. Iteration order is arrival
    order, not sorted; sort where output order matters.
    """

    @property
    def config(self) -> MeshConfig: ...

    @property
    def generation(self) -> int:
        """Incremented by every ``apply`` that changed something."""
        ...

    def get(self, cls: type[T], namespace: str, name: str) -> T | None:
        """The object of kind ``cls`` (namespace ``""`` for cluster-scoped kinds)."""
        ...

    def get_by_key(self, key: ObjectKey) -> KubeObject | None: ...

    def objects(self, cls: type[T], namespace: str | None = None) -> Collection[T]:
        """All objects of kind ``cls``, optionally only those in ``namespace``."""
        ...

    def namespace(self, name: str) -> Namespace | None: ...

    def pods_by_ip(self, ip: IPAddress) -> Sequence[Pod]:
        """Pods with ``ip`` among their pod IPs (several when they use host networking)."""
        ...

    def pods_with_labels(self, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
        """Pods in ``namespace`` whose labels include all of ``selector``.

        An empty selector matches every pod in the namespace; callers where
        "empty selects nothing" (Service selectors) must check first. The
        result is sorted by name.
        """
        ...

    def services_in(self, namespace: str) -> Collection[Service]: ...


class MeshStore:
    """The in-memory state of all objects, with the indexes translators need."""

    def __init__(self, config: MeshConfig | None = None) -> None:
        self._config = config or MeshConfig()
        self._generation = 0
        self._objects: dict[ObjectKey, KubeObject] = {}
        self._by_kind: dict[str, dict[ObjectKey, KubeObject]] = {}
        self._by_kind_namespace: dict[tuple[str, str], dict[ObjectKey, KubeObject]] = {}
        self._pods_by_ip: dict[IPAddress, dict[ObjectKey, Pod]] = {}
        # (namespace, label, value) -> pods carrying that label: selector lookups
        # intersect the smallest few sets instead of scanning the namespace.
        self._pods_by_label: dict[tuple[str, str, str], set[ObjectKey]] = {}

    # --- writing -----------------------------------------------------------------

    def apply(self, upserts: Iterable[KubeObject], deletes: Iterable[ObjectKey] = ()) -> ChangeSet:
        """Apply deletes, then upserts (so an upsert of a deleted key wins).

        Returns the keys that really changed; an upsert equal to the stored
        object, or a delete of an unknown key, is not a change.
        """
        wanted: dict[ObjectKey, KubeObject | None] = dict.fromkeys(deletes)
        for obj in upserts:
            wanted[obj.key] = obj
        added: set[ObjectKey] = set()
        updated: set[ObjectKey] = set()
        deleted: set[ObjectKey] = set()
        previous: dict[ObjectKey, KubeObject] = {}
        for key, new in wanted.items():
            old = self._objects.get(key)
            if old == new:
                continue
            if old is not None:
                previous[key] = old
                self._unindex(key, old)
            if new is None:
                deleted.add(key)
            else:
                (updated if old is not None else added).add(key)
                self._index(key, new)
        changes = ChangeSet(
            frozenset(added), frozenset(updated), frozenset(deleted), FrozenMap(previous)
        )
        if changes:
            self._generation += 1
        return changes

    def _index(self, key: ObjectKey, obj: KubeObject) -> None:
        self._objects[key] = obj
        self._by_kind.setdefault(key.kind, {})[key] = obj
        self._by_kind_namespace.setdefault((key.kind, key.namespace), {})[key] = obj
        if isinstance(obj, Pod):
            for ip in obj.pod_ips:
                self._pods_by_ip.setdefault(ip, {})[key] = obj
            for label, value in obj.labels.items():
                self._pods_by_label.setdefault((key.namespace, label, value), set()).add(key)

    def _unindex(self, key: ObjectKey, obj: KubeObject) -> None:
        del self._objects[key]
        _discard(self._by_kind, key.kind, key)
        _discard(self._by_kind_namespace, (key.kind, key.namespace), key)
        if isinstance(obj, Pod):
            for ip in obj.pod_ips:
                _discard(self._pods_by_ip, ip, key)
            for label, value in obj.labels.items():
                _discard(self._pods_by_label, (key.namespace, label, value), key)

    # --- reading (the Mesh protocol) -------------------------------------------------

    @property
    def config(self) -> MeshConfig:
        return self._config

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def keys(self) -> Collection[ObjectKey]:
        return self._objects.keys()

    def all_objects(self) -> Collection[KubeObject]:
        return self._objects.values()

    def get_by_key(self, key: ObjectKey) -> KubeObject | None:
        return self._objects.get(key)

    def get(self, cls: type[T], namespace: str, name: str) -> T | None:
        obj = self._objects.get(ObjectKey(cls.kind, namespace, name))
        return obj if isinstance(obj, cls) else None

    def objects(self, cls: type[T], namespace: str | None = None) -> Collection[T]:
        if namespace is None:
            bucket = self._by_kind.get(cls.kind)
        else:
            bucket = self._by_kind_namespace.get((cls.kind, namespace))
        # Every value in a kind's bucket is an instance of that kind's class.
        return bucket.values() if bucket else ()  # type: ignore[return-value]

    def namespace(self, name: str) -> Namespace | None:
        return self.get(Namespace, "", name)

    def pods_by_ip(self, ip: IPAddress) -> Sequence[Pod]:
        return tuple(self._pods_by_ip.get(ip, {}).values())

    def pods_with_labels(self, namespace: str, selector: Mapping[str, str]) -> list[Pod]:
        if not selector:
            return sorted(self.objects(Pod, namespace), key=lambda pod: pod.name)
        candidates = sorted(
            (
                self._pods_by_label.get((namespace, label, value), set())
                for label, value in selector.items()
            ),
            key=len,
        )
        keys = candidates[0].intersection(*candidates[1:])
        # Sorted so that translators iterating the result produce stable output.
        pods = [self._objects[key] for key in sorted(keys)]
        return [pod for pod in pods if isinstance(pod, Pod)]

    def services_in(self, namespace: str) -> Collection[Service]:
        return self.objects(Service, namespace)


def _discard(index: MutableMapping[B, Any], bucket: B, key: ObjectKey) -> None:
    """Remove ``key`` from one bucket of an index, dropping the bucket once empty."""
    members = index.get(bucket)
    if members is None:
        return
    if isinstance(members, set):
        members.discard(key)
    else:
        members.pop(key, None)
    if not members:
        del index[bucket]
