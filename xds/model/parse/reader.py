"""Typed, path-aware access to one decoded YAML/JSON value.

Every accessor either returns a value of the promised type or raises a
``ManifestError`` naming the object and the exact field path, so the kind
parsers read like a list of fields and never format errors themselves.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NoReturn, TypeVar

from xds.model.errors import ManifestError
from xds.model.frozen import FrozenMap, Labels
from xds.model.meta import IPAddress, parse_ip

E = TypeVar("E", bound=StrEnum)

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+(\[\d+\])*")


@dataclass(slots=True)
class ObjectRef:
    """Who the fields belong to, for error messages; filled in as metadata is read."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _is_int_in(value: object, minimum: int | None, maximum: int | None) -> bool:
    # bool is an int subclass in Python, but `true` is not a number in a manifest.
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    )


def _join(path: str, key: str) -> str:
    # Plain field names (optionally indexed, "addresses[2]") join with a dot;
    # map keys such as label names "istio.io/rev" are quoted in brackets.
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f'{path}["{key}"]'


class _Access:
    """Which fields of one object its parser looked at, so that the fields it never
    read can be reported instead of silently dropped.

    ``read``: values taken whole (a string, a label map). ``entered``: objects and
    lists the parser walked into, whose own fields are then checked one by one (a
    scalar element of an entered list counts as read: the parser iterated it)."""

    __slots__ = ("entered", "read")

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.entered: set[str] = set()


class Reader:
    """A value at ``path`` inside the object ``ref``.

    ``Reader(None, ...)`` reads like an empty object, so optional sections
    need no special casing: ``spec.obj("mtls").string("mode")`` works whether
    or not ``mtls`` is present. With ``track``, the Readers of one object share a
    record of the fields read (see :meth:`unread`); without, reading costs nothing
    extra (core kinds are read in part by design and never reported).
    """

    __slots__ = ("_access", "path", "ref", "value")

    def __init__(
        self,
        value: object,
        path: str,
        ref: ObjectRef,
        *,
        track: bool = False,
        access: _Access | None = None,
    ) -> None:
        self.value = value
        self.path = path
        self.ref = ref
        self._access = access if access is not None or not track else _Access()

    def _child(self, value: object, path: str) -> Reader:
        if self._access is not None:
            self._access.entered.add(path)
        return Reader(value, path, self.ref, access=self._access)

    def unread(self, limit: int = 20) -> tuple[str, ...]:
        """Paths of the fields under this value that no accessor read (null ones aside),
        at most ``limit``: what a parser ignored, for a warning."""
        if self._access is None:
            raise RuntimeError("unread() needs a Reader made with track=True")
        found: list[str] = []
        self._collect_unread(self._access, self.value, self.path, found, limit)
        return tuple(found)

    def _collect_unread(
        self, access: _Access, value: object, path: str, found: list[str], limit: int
    ) -> None:
        if value is None or path in access.read or len(found) >= limit:
            return
        if path not in access.entered and path != self.path:
            found.append(path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self._collect_unread(access, item, _join(path, str(key)), found, limit)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._collect_unread(access, item, f"{path}[{index}]", found, limit)

    # --- navigation -------------------------------------------------------

    def _join(self, key: str) -> str:
        return _join(self.path, key)

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        """Raise a ManifestError for this value, or for its field ``key``."""
        raise ManifestError(
            message,
            field=self._join(key) if key is not None else self.path,
            kind=self.ref.kind,
            namespace=self.ref.namespace,
            name=self.ref.name,
        )

    def _mapping(self) -> Mapping[str, object]:
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            self.fail(f"expected an object, got {_describe(self.value)}")
        return self.value

    def _get(self, key: str) -> object:
        """The value at ``key``, taken whole (recorded as read)."""
        if self._access is not None:
            self._access.read.add(self._join(key))
        return self._mapping().get(key)

    def raw(self, key: str) -> object:
        """The undecoded value at ``key`` (``None`` when absent), for fields of mixed type."""
        return self._get(key)

    def has(self, key: str) -> bool:
        """The field is present and not null (looking is not reading it)."""
        return self._mapping().get(key) is not None

    def peek(self, key: str) -> object:
        """The value at ``key`` without taking it: it is still reported by :meth:`unread`
        unless the parser decides it is handled (then :meth:`skip` it)."""
        return self._mapping().get(key)

    def skip(self, *keys: str) -> None:
        """Fields deliberately not read (they cannot change what is served): never
        reported by :meth:`unread`."""
        if self._access is not None:
            self._access.read.update(self._join(key) for key in keys)

    def obj(self, key: str) -> Reader:
        """The object at ``key``; an absent field reads as an empty object."""
        value = self._mapping().get(key)
        if value is not None and not isinstance(value, Mapping):
            self.fail(f"expected an object, got {_describe(value)}", key)
        return self._child(value, self._join(key))

    def items(self, key: str) -> list[Reader]:
        """The list at ``key`` (empty when absent), one Reader per element."""
        value = self._mapping().get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"expected a list, got {_describe(value)}", key)
        path = self._join(key)
        if self._access is not None:
            self._access.entered.add(path)
        return [self._child(item, f"{path}[{index}]") for index, item in enumerate(value)]

    def entries(self, key: str) -> list[tuple[str, Reader]]:
        """The (key, value) pairs of the object at ``key``."""
        child = self.obj(key)
        return [
            (str(name), child._child(value, child._join(str(name))))
            for name, value in child._mapping().items()
        ]

    # --- scalars -----------------------------------------------------------

    def opt_string(self, key: str) -> str | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(f"expected a string, got {_describe(value)}", key)
        return value

    def string(self, key: str, default: str = "") -> str:
        value = self.opt_string(key)
        return default if value is None else value

    def required_string(self, key: str) -> str:
        value = self.opt_string(key)
        if not value:
            self.fail("required field is missing or empty", key)
        return value

    def opt_integer(
        self,
        key: str,
        minimum: int | None = None,
        maximum: int | None = None,
        what: str = "an integer",
    ) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if not _is_int_in(value, minimum, maximum):
            self.fail(f"expected {what}, got {_describe(value)}", key)
        assert isinstance(value, int)
        return value

    def integer_value(
        self, minimum: int | None = None, maximum: int | None = None, what: str = "an integer"
    ) -> int:
        """This value itself as an integer (for list elements)."""
        if not _is_int_in(self.value, minimum, maximum):
            self.fail(f"expected {what}, got {_describe(self.value)}")
        assert isinstance(self.value, int)
        return self.value

    def integer(
        self,
        key: str,
        default: int,
        minimum: int | None = None,
        maximum: int | None = None,
        what: str = "an integer",
    ) -> int:
        value = self.opt_integer(key, minimum, maximum, what)
        return default if value is None else value

    def opt_port(self, key: str) -> int | None:
        return self.opt_integer(key, 1, 65535, "an integer 1-65535")

    def port(self, key: str) -> int:
        value = self.opt_port(key)
        if value is None:
            self.fail("required field is missing; expected an integer 1-65535", key)
        return value

    def opt_boolean(self, key: str) -> bool | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {_describe(value)}", key)
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.opt_boolean(key)
        return default if value is None else value

    def opt_number(self, key: str, minimum: float, maximum: float) -> float | None:
        value = self._get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not minimum <= value <= maximum
        ):
            self.fail(f"expected a number {minimum:g}-{maximum:g}, got {_describe(value)}", key)
        return float(value)

    def opt_enum(self, key: str, enum: type[E]) -> E | None:
        value = self.opt_string(key)
        if value is None:
            return None
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            self.fail(f'expected one of {allowed}, got "{value}"', key)

    def enum(self, key: str, enum: type[E], default: E) -> E:
        value = self.opt_enum(key, enum)
        return default if value is None else value

    def opt_duration(self, key: str) -> timedelta | None:
        value = self.opt_string(key)
        if value is None:
            return None
        duration = parse_duration(value)
        if duration is None:
            self.fail(f'expected a duration such as "10s" or "1m30s", got "{value}"', key)
        return duration

    def opt_timestamp(self, key: str) -> datetime | None:
        value = self._get(key)
        if value is None:
            return None
        # PyYAML already turns an unquoted RFC 3339 timestamp into a datetime.
        parsed = None
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed is None:
            self.fail(f"expected an RFC 3339 timestamp, got {_describe(value)}", key)
        # Always timezone-aware, so that "the oldest object" comparisons never mix kinds.
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    # --- collections of scalars ---------------------------------------------

    def strings(self, key: str) -> tuple[str, ...]:
        result = []
        for item in self.items(key):
            if not isinstance(item.value, str):
                item.fail(f"expected a string, got {_describe(item.value)}")
            result.append(item.value)
        return tuple(result)

    def enums(self, key: str, enum: type[E]) -> tuple[E, ...]:
        """A list of enum values, such as ``ipFamilies``."""
        allowed = ", ".join(member.value for member in enum)
        result = []
        for index, text in enumerate(self.strings(key)):
            try:
                result.append(enum(text))
            except ValueError:
                self.fail(f'expected one of {allowed}, got "{text}"', f"{key}[{index}]")
        return tuple(result)

    def string_map(self, key: str) -> Labels:
        """A map of string to string (labels, annotations, selectors)."""
        result = {}
        for name, value in self.entries(key):
            if not isinstance(value.value, str):
                value.fail(f"expected a string value, got {_describe(value.value)}")
            result[name] = value.value
        return FrozenMap(result)

    def opt_string_map(self, key: str) -> Labels | None:
        """Like ``string_map`` but ``None`` when the field is absent (absent ≠ empty)."""
        return self.string_map(key) if self.has(key) else None

    def ip(self, key: str) -> IPAddress:
        value = self.required_string(key)
        parsed = parse_ip(value)
        if parsed is None:
            self.fail(f'expected an IP address, got "{value}"', key)
        return parsed


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta | None:
    """Parse a Go-style duration (``1h2m3.5s``, ``250ms``, ``0``); ``None`` if malformed.

    This is a superset of both Gateway API durations and the protobuf JSON
    form Istio uses (``"1.5s"``). Negative durations are rejected.
    """
    if text == "0":
        return timedelta(0)
    position = 0
    seconds = 0.0
    for part in _DURATION_PART.finditer(text):
        if part.start() != position:
            return None
        seconds += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(text):
        return None
    return timedelta(seconds=seconds)


# parse_ip lived here first; translators import it from this module too.
__all__ = ["ObjectRef", "Reader", "parse_duration", "parse_ip"]
