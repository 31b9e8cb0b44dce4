"""The resource store: what each scope of proxies should have, as shared bytes.

A *scope* is a set of proxies that receive the same resources: every ztunnel
shares one scope; each waypoint has its own. Generators write resources into
scopes; ``commit`` then tells the streams watching a scope which names were
touched. Streams compare versions themselves, so a rebuild that produces the
same bytes (same version) reaches nobody.

Mirrors go-control-plane's split between the snapshot cache and the server:
the store knows nothing about streams beyond a callback per watcher.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from xds.resources import Resource
from xds.type_urls import in_push_order

Touched = Mapping[str, frozenset[str]]
"""type URL -> names whose resource was added, changed or removed."""

Watcher = Callable[[Touched, float], None]
"""Called with what was touched and when the change behind it first happened
(``time.monotonic()``), so that streams can measure convergence."""

_EMPTY: Mapping[str, Resource] = MappingProxyType({})
_NO_VERSIONS: Mapping[str, str] = MappingProxyType({})


@dataclass
class TypeTable:
    """The resources of one type in one scope: written by ``ConfigStore``, read through
    ``ScopeView``."""

    resources: dict[str, Resource] = field(default_factory=dict)
    by_alias: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # group -> resource names
    # Bumped on every committed change; SotW uses it as version_info.
    generation: int = 0
    # Shared by every stream until the next change (built on first use): the
    # name -> version map a fully synced client holds, and the encoded Delta
    # resources of a full response.
    _versions: MappingProxyType[str, str] | None = None
    _delta_blob: bytes | None = None
    # The last commit as a change from the generation before it: the versions
    # map of that generation (if anyone built it), the names that changed, and
    # (built on first use) the encoded Delta update every in-sync client needs.
    previous: MappingProxyType[str, str] | None = None
    changed: frozenset[str] = frozenset()
    _change: tuple[bytes, tuple[str, ...]] | None = None
    _before: MappingProxyType[str, str] | None = None
    _mutated: bool = False

    def versions(self) -> Mapping[str, str]:
        if self._versions is None:
            if self.previous is not None and not self._mutated:
                # The generation before, plus this commit's names: reading 11,000
                # versions back was 1-2 % of a serving process under churn. copy(), not
                # dict(): a mapping proxy's copy is its dict's (50 us), dict() reads it
                # through the mapping protocol (1 ms, slower than reading the versions).
                versions = self.previous.copy()
                for name in self.changed:
                    resource = self.resources.get(name)
                    if resource is None:
                        versions.pop(name, None)
                    else:
                        versions[name] = resource.version
            else:
                versions = {name: r.version for name, r in self.resources.items()}
            self._versions = MappingProxyType(versions)
        return self._versions

    def delta_blob(self) -> bytes:
        if self._delta_blob is None:
            self._delta_blob = b"".join(r.delta_field() for r in self.resources.values())
        return self._delta_blob

    def change(self) -> tuple[bytes, tuple[str, ...]]:
        """The last commit's updates (encoded) and removals, relative to ``previous``."""
        if self._change is None:
            previous: Mapping[str, str] = self.previous or {}
            updated = []
            removed = []
            for name in sorted(self.changed):
                resource = self.resources.get(name)
                if resource is None:
                    if name in previous:
                        removed.append(name)
                elif previous.get(name) != resource.version:
                    updated.append(resource.delta_field())
            self._change = (b"".join(updated), tuple(removed))
        return self._change

    def committed(self, names: frozenset[str]) -> None:
        self.generation += 1
        self.previous = self._before
        self.changed = names
        self._change = None
        self._before = None
        self._mutated = False

    def put(self, resource: Resource) -> bool:
        old = self.resources.get(resource.name)
        if old is not None and old.version == resource.version and old.aliases == resource.aliases:
            return False
        self._mutating()
        if old is not None:
            self._drop_aliases(old)
        self.resources[resource.name] = resource
        for alias in resource.aliases:
            self.by_alias[alias] = resource.name
        for group in resource.groups:
            self.members.setdefault(group, set()).add(resource.name)
        return True

    def delete(self, name: str) -> bool:
        old = self.resources.pop(name, None)
        if old is None:
            return False
        self._mutating()
        self._drop_aliases(old)
        return True

    def _mutating(self) -> None:
        if not self._mutated:
            self._mutated = True
            self._before = self._versions
        self._versions = self._delta_blob = None

    def _drop_aliases(self, resource: Resource) -> None:
        for alias in resource.aliases:
            if self.by_alias.get(alias) == resource.name:
                del self.by_alias[alias]
        for group in resource.groups:
            names = self.members.get(group)
            if names is not None:
                names.discard(resource.name)
                if not names:
                    del self.members[group]


class ScopeView:
    """Read access to one scope, always reflecting the latest commit.

    ``overrides`` serve some types from another scope: a waypoint's secrets
    live in the scope of its identity, not in the scope of its Gateway."""

    __slots__ = ("_overrides", "_store", "scope")

    def __init__(
        self, store: ConfigStore, scope: str, overrides: Mapping[str, str] | None = None
    ) -> None:
        self._store = store
        self.scope = scope
        self._overrides = dict(overrides or {})

    def scope_of(self, type_url: str) -> str:
        return self._overrides.get(type_url, self.scope)

    def resources(self, type_url: str) -> Mapping[str, Resource]:
        table = self._lookup(type_url)
        return _EMPTY if table is None else MappingProxyType(table.resources)

    def get(self, type_url: str, name: str) -> Resource | None:
        table = self._lookup(type_url)
        return None if table is None else table.resources.get(name)

    def resolve_alias(self, type_url: str, alias: str) -> str | None:
        """The primary name of the resource with this alias (e.g. "network/10.0.0.1")."""
        table = self._lookup(type_url)
        return None if table is None else table.by_alias.get(alias)

    def members(self, type_url: str, group: str) -> frozenset[str]:
        """The names of the resources in ``group`` (see ``Resource.groups``)."""
        table = self._lookup(type_url)
        names = None if table is None else table.members.get(group)
        return frozenset(names) if names else frozenset()

    def generation(self, type_url: str) -> int:
        table = self._lookup(type_url)
        return 0 if table is None else table.generation

    def versions(self, type_url: str) -> Mapping[str, str]:
        """name -> version of every resource: shared, read-only, until the next change."""
        table = self._lookup(type_url)
        return _NO_VERSIONS if table is None else table.versions()

    def delta_blob(self, type_url: str) -> bytes:
        """Every resource as encoded ``DeltaDiscoveryResponse.resources`` entries, shared."""
        table = self._lookup(type_url)
        return b"" if table is None else table.delta_blob()

    def last_change(self, type_url: str) -> tuple[Mapping[str, str] | None, frozenset[str]]:
        """The versions map the last commit started from (if built) and what it changed."""
        table = self._lookup(type_url)
        return (None, frozenset()) if table is None else (table.previous, table.changed)

    def last_change_encoded(self, type_url: str) -> tuple[bytes, tuple[str, ...]]:
        """The last commit as Delta updates (encoded once) and removed names."""
        table = self._lookup(type_url)
        return (b"", ()) if table is None else table.change()

    def _lookup(self, type_url: str) -> TypeTable | None:
        return self._store.table(self.scope_of(type_url), type_url)


class ConfigStore:
    """Scoped, versioned resources plus change notification on commit."""

    def __init__(self) -> None:
        self._scopes: dict[str, dict[str, TypeTable]] = {}
        self._watchers: dict[str, set[Watcher]] = defaultdict(set)
        self._touched: dict[str, dict[str, set[str]]] = {}

    # -- writing (generators) -------------------------------------------------

    def upsert(self, scope: str, resources: Iterable[Resource]) -> None:
        for resource in resources:
            table = self._table(scope, resource.type_url, create=True)
            assert table is not None
            if table.put(resource):
                self._touch(scope, resource.type_url, resource.name)

    def remove(self, scope: str, type_url: str, names: Iterable[str]) -> None:
        table = self._table(scope, type_url, create=False)
        if table is None:
            return
        for name in names:
            if table.delete(name):
                self._touch(scope, type_url, name)

    def replace(self, scope: str, type_url: str, resources: Iterable[Resource]) -> None:
        """Make ``resources`` the whole content of one type in a scope."""
        wanted = {r.name: r for r in resources}
        table = self._table(scope, type_url, create=True)
        assert table is not None
        self.remove(scope, type_url, [name for name in table.resources if name not in wanted])
        self.upsert(scope, wanted.values())

    def drop_scope(self, scope: str) -> None:
        for type_url, table in list(self._scopes.get(scope, {}).items()):
            self.remove(scope, type_url, list(table.resources))

    def commit(self, origin: float | None = None) -> dict[str, Touched]:
        """Publish everything written since the last commit; returns what was touched.

        ``origin`` is when the change behind this commit first happened (monotonic
        clock; default now)."""
        if origin is None:
            origin = time.monotonic()
        touched, self._touched = self._touched, {}
        published: dict[str, Touched] = {}
        for scope, by_type in touched.items():
            change = {t: frozenset(names) for t, names in by_type.items()}
            for type_url, names in change.items():
                table = self._table(scope, type_url, create=False)
                if table is not None:
                    table.committed(names)
            published[scope] = change
            for watcher in list(self._watchers.get(scope, ())):
                watcher(change, origin)
        return published

    # -- reading (streams) ----------------------------------------------------

    def view(self, scope: str, overrides: Mapping[str, str] | None = None) -> ScopeView:
        return ScopeView(self, scope, overrides)

    def watch(self, scope: str, watcher: Watcher) -> Callable[[], None]:
        """Call ``watcher`` after each commit touching ``scope``; returns an unwatch function."""
        self._watchers[scope].add(watcher)

        def unwatch() -> None:
            watchers = self._watchers.get(scope)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[scope]

        return unwatch

    def scopes(self) -> list[str]:
        return sorted(self._scopes)

    def types(self, scope: str) -> list[str]:
        """The type URLs a scope holds resources of, in push order."""
        return in_push_order(
            t for t, table in self._scopes.get(scope, {}).items() if table.resources
        )

    def table(self, scope: str, type_url: str) -> TypeTable | None:
        """The committed resources of one type in a scope, if any (what views read)."""
        return self._table(scope, type_url, create=False)

    def _table(self, scope: str, type_url: str, *, create: bool) -> TypeTable | None:
        tables = self._scopes.get(scope)
        if tables is None:
            if not create:
                return None
            tables = self._scopes[scope] = {}
        table = tables.get(type_url)
        if table is None and create:
            table = tables[type_url] = TypeTable()
        return table

    def _touch(self, scope: str, type_url: str, name: str) -> None:
        self._touched.setdefault(scope, {}).setdefault(type_url, set()).add(name)
