"""Small builders for the protobuf shapes every waypoint module needs.

They keep the call sites short and give the repeated shapes one spelling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TypeAlias

from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as fmt_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2
from google.protobuf.message import Message

from xds.core.v3 import extension_pb2 as xds_extension_pb2

_TYPE_PREFIX = "type.googleapis.com/"

JsonValue: TypeAlias = (
    str | int | float | bool | Mapping[str, "JsonValue"] | Sequence["JsonValue"] | None
)
"""Plain JSON-like Python values: what a ``Struct`` holds, and the bootstrap document."""


def typed(message: Message) -> any_pb2.Any:
    """``message`` packed into an ``Any`` with the usual type URL prefix.

    Deterministically: the bytes of a packed config are final (the outer message's
    deterministic serialization does not reach into them), and map fields (RBAC
    policies, matcher maps, JWT providers) would otherwise come out in an order that
    differs between processes, so an unchanged resource would look changed after a
    restart or on another worker."""
    packed = any_pb2.Any()
    packed.Pack(message, type_url_prefix=_TYPE_PREFIX, deterministic=True)
    return packed


def extension(name: str, message: Message) -> extension_pb2.TypedExtensionConfig:
    """A ``TypedExtensionConfig``: ``name`` is a free-form label, the type picks the factory."""
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=typed(message))


def xds_extension(name: str, message: Message) -> xds_extension_pb2.TypedExtensionConfig:
    """The CNCF ``xds.core.v3.TypedExtensionConfig`` that matcher trees use.

    mypy sees ``xds.core`` as ``Any`` (it shares its top-level name with this project),
    so this type is not checked (pyproject.toml)."""
    return xds_extension_pb2.TypedExtensionConfig(name=name, typed_config=typed(message))


def duration(value: timedelta | float) -> duration_pb2.Duration:
    """A ``Duration``; floats are seconds."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    result = duration_pb2.Duration()
    whole = int(seconds)
    result.seconds = whole
    result.nanos = round((seconds - whole) * 1e9)
    return result


def uint32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def boolean(value: bool) -> wrappers_pb2.BoolValue:
    return wrappers_pb2.BoolValue(value=value)


def struct(values: Mapping[str, JsonValue]) -> struct_pb2.Struct:
    """A ``Struct`` from plain JSON-like Python values."""
    strings = {key: value for key, value in values.items() if isinstance(value, str)}
    if len(strings) == len(values):
        # The common case (endpoint metadata, 10k per build), built by the C extension
        # in one call rather than field by field through ``Struct.update``.
        fields = {key: struct_pb2.Value(string_value=value) for key, value in strings.items()}
        return struct_pb2.Struct(fields=fields)
    result = struct_pb2.Struct()
    result.update(values)
    return result


def metadata(namespaces: Mapping[str, Mapping[str, JsonValue]]) -> base_pb2.Metadata:
    """``core.v3.Metadata`` with one ``filter_metadata`` struct per namespace."""
    return base_pb2.Metadata(
        filter_metadata={namespace: struct(values) for namespace, values in namespaces.items()}
    )


def inline_format(text: str, *, omit_empty: bool = False) -> fmt_pb2.SubstitutionFormatString:
    """A ``SubstitutionFormatString`` holding ``text`` (used by set_filter_state).

    ``omit_empty`` renders a missing value as "" instead of "-".
    """
    return fmt_pb2.SubstitutionFormatString(
        text_format_source=base_pb2.DataSource(inline_string=text), omit_empty_values=omit_empty
    )


def fraction_per_million(percent: float) -> percent_pb2.FractionalPercent:
    """``FractionalPercent`` for a 0-100 percentage with istiod's precision (p*10000/1e6)."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def exact(value: str, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=value, ignore_case=ignore_case)


def prefix(value: str, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(prefix=value, ignore_case=ignore_case)


def suffix(value: str, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(suffix=value, ignore_case=ignore_case)


def regex(pattern: str) -> regex_pb2.RegexMatcher:
    """A RE2 ``RegexMatcher`` (Envoy's default engine; no engine field needed)."""
    return regex_pb2.RegexMatcher(regex=pattern)


def safe_regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex(pattern))


def present() -> string_pb2.StringMatcher:
    """A string matcher that matches any non-empty value."""
    return safe_regex(".+")
