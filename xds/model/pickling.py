"""Faster pickling of the model's frozen, slotted dataclasses.

Model objects cross to every serving process over the commit stream
(``xds.plane.commits``): all of them in a snapshot (12k for the 10k-pod mesh) and
each changed one after that. For a frozen class with slots, ``dataclasses``
generates ``__getstate__``/``__setstate__`` that call ``dataclasses.fields()`` for
every object: 45 % of the time to unpickle a snapshot. ``install`` replaces them
with equivalents that look the field names up once per class. The state is the
same sequence of field values, so either end reads the other's pickles.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from types import ModuleType
from typing import Any

_GENERATED = "_dataclass_setstate"


def install(*modules: ModuleType) -> None:
    """Give every dataclass defined in ``modules`` that has the generated methods the
    faster ones (each class has its own, subclasses included)."""
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and getattr(value.__dict__.get("__setstate__"), "__name__", "") == _GENERATED
            ):
                _install(value)


def _install(cls: type) -> None:
    names = tuple(field.name for field in dataclasses.fields(cls))
    getter: Callable[[Any], tuple[Any, ...]]
    if len(names) > 1:
        getter = operator.attrgetter(*names)
    else:  # attrgetter of one name returns the value itself, not a tuple

        def getter(obj: Any) -> tuple[Any, ...]:
            return tuple(getattr(obj, name) for name in names)

    set_attribute = object.__setattr__

    def __getstate__(self: Any) -> tuple[Any, ...]:
        return getter(self)

    def __setstate__(self: Any, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            set_attribute(self, name, value)

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010 (a method, not an attribute)
    setattr(cls, "__setstate__", __setstate__)  # noqa: B010
