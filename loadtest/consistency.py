"""Does a simulated proxy hold what ``xds render`` says it should? (the soak's final check)

The expected state comes from ``xds.plane.render.render`` on the final config
directory: per type URL, resource name -> the resource as protobuf JSON (what
``xds render`` prints). A proxy's state is what it applied: per type URL,
name -> resource bytes. Both sides are compared as decoded JSON, so map order
in the bytes cannot matter, while anything a proxy would act on does.

Types a proxy subscribes to by wildcard (ztunnel's Address and Authorization,
Envoy's clusters and listeners) must match exactly: nothing missing, nothing
extra, nothing different. Endpoints are asked for by name, so a proxy must
hold no endpoints that no longer exist and none that differ, but need not hold
every assignment there is. Secrets are minted per request and never rendered:
not compared.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

import xds.translate.waypoint.translator
import xds.translate.ztunnel.translator  # noqa: F401
from xds import type_urls
from xds.resources import decode

Expected = Mapping[str, Mapping[str, Any]]
"""type URL -> resource name -> the resource as protobuf JSON."""
Held = Mapping[str, Mapping[str, bytes]]
"""type URL -> resource name -> the bytes the proxy applied."""

WILDCARD_TYPES = frozenset(
    {type_urls.ADDRESS, type_urls.AUTHORIZATION, type_urls.CLUSTER, type_urls.LISTENER}
)
NAMED_TYPES = frozenset({type_urls.ENDPOINT})
_SAMPLES = 3


def sotw_name(type_url: str, body: bytes) -> str:
    """A state-of-the-world resource's name (SotW responses carry bare ``Any``s)."""
    message = decode(type_url, body)
    return str(getattr(message, "cluster_name", "") or getattr(message, "name", ""))


def expected_from_render(rendered: Mapping[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """``xds.plane.render.render``'s output (type URL -> [{"name", "resource"}]) keyed by name."""
    return {
        type_url: {item["name"]: item["resource"] for item in items}
        for type_url, items in rendered.items()
    }


@dataclass
class Divergence:
    """How one proxy's state differs from the expected state, by type URL."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, list[str]] = field(default_factory=dict)
    different: dict[str, list[str]] = field(default_factory=dict)
    first_difference: str = ""
    """Where the first different resource differs: ``name: path: held != expected``."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.different)

    def describe(self) -> str:
        parts = []
        for what, found in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("different", self.different),
        ):
            for type_url, names in sorted(found.items()):
                shown = ", ".join(names[:_SAMPLES]) + (", ..." if len(names) > _SAMPLES else "")
                parts.append(f"{len(names)} {what} {type_url.rsplit('.', 1)[-1]} ({shown})")
        if self.first_difference:
            parts.append(f"first difference: {self.first_difference}")
        return "; ".join(parts)


class Decoder:
    """Resource bytes -> protobuf JSON, each distinct body decoded once (many proxies
    hold the same bytes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes], Any] = {}

    def __call__(self, type_url: str, body: bytes) -> Any:
        key = (type_url, body)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = json_format.MessageToDict(
                decode(type_url, body), preserving_proto_field_name=False
            )
        return found


def compare(
    held: Held,
    expected: Expected,
    decoder: Decoder,
    *,
    types: Collection[str],
) -> Divergence:
    """Compare the ``types`` the proxy subscribes to (see the module docstring)."""
    result = Divergence()
    for type_url in types:
        have = held.get(type_url, {})
        want = expected.get(type_url, {})
        if type_url in WILDCARD_TYPES:
            missing = sorted(set(want) - set(have))
            if missing:
                result.missing[type_url] = missing
        extra = sorted(set(have) - set(want))
        if extra:
            result.extra[type_url] = extra
        different = sorted(
            name for name in set(have) & set(want) if decoder(type_url, have[name]) != want[name]
        )
        if different:
            result.different[type_url] = different
            if not result.first_difference:
                name = different[0]
                where = first_difference(decoder(type_url, have[name]), want[name])
                result.first_difference = f"{name}: {where}"
    return result


def first_difference(held: Any, expected: Any, path: str = "") -> str:
    """The first path at which two JSON values differ, with both values (shortened)."""
    if isinstance(held, dict) and isinstance(expected, dict):
        for key in sorted(set(held) | set(expected)):
            if held.get(key) != expected.get(key):
                return first_difference(held.get(key), expected.get(key), f"{path}.{key}")
    elif isinstance(held, list) and isinstance(expected, list):
        if len(held) == len(expected):
            for index, (a, b) in enumerate(zip(held, expected, strict=True)):
                if a != b and (a in expected or b in held):
                    return f"{path}: the same {len(held)} items in another order"
                if a != b:
                    return first_difference(a, b, f"{path}[{index}]")
        only_held = [item for item in held if item not in expected]
        only_expected = [item for item in expected if item not in held]
        return (
            f"{path}: {len(held)} items held, {len(expected)} expected; only held: "
            f"{_short(only_held)}; only expected: {_short(only_expected)}"
        )
    return f"{path or '.'}: held {_short(held)} != expected {_short(expected)}"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
