"""An immutable, hashable mapping for labels, annotations and other small maps.

Model objects are frozen dataclasses compared with ``==`` to decide whether
anything changed, and hashed when used as keys. A plain ``dict`` field would
break both, and a tuple of pairs would make every lookup linear, so maps in the
model are ``FrozenMap``: a read-only ``Mapping`` that hashes by content.
"""

from __future__ import annotations

from collections.abc import Hashable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)
T = TypeVar("T")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """A read-only mapping that is hashable and equal to any mapping with the same items.

    Insertion order is kept for iteration (so output built from it is stable),
    but it does not take part in equality or hashing, like ``dict``.
    """

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._items: dict[K, V] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    # The dict's own, not Mapping's generic ones (``get`` through ``__getitem__`` and a
    # KeyError): label lookups are on every translator's hot path.
    @overload
    def get(self, key: K, /) -> V | None: ...

    @overload
    def get(self, key: K, /, default: V | T) -> V | T: ...

    def get(self, key: K, /, default: object = None) -> object:
        return self._items.get(key, default)

    def items(self) -> ItemsView[K, V]:
        return self._items.items()

    def keys(self) -> KeysView[K]:
        return self._items.keys()

    def values(self) -> ValuesView[V]:
        return self._items.values()

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        # Cached: the maps are immutable, and the same labels are hashed over
        # and over when whole objects are compared or used as dict keys.
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def to_dict(self) -> dict[K, V]:
        """A mutable copy, e.g. for JSON output."""
        return dict(self._items)


Labels = FrozenMap[str, str]
"""Kubernetes labels or annotations."""

EMPTY_LABELS: Labels = FrozenMap()


def empty_map() -> FrozenMap[Any, Any]:
    """A new empty map, for dataclass defaults of any key/value type."""
    return FrozenMap()


def is_subset(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every ``selector`` label is present in ``labels`` with the same value.

    This is Kubernetes ``matchLabels`` semantics; an empty selector is a subset
    of everything, so callers with "empty selects nothing" rules (Services)
    must check for emptiness themselves.
    """
    return all(labels.get(key) == value for key, value in selector.items())
