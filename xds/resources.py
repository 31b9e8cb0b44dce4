"""Resources serialized once, shared by every stream that receives them.

This is the vocabulary between translation (which produces resources) and
serving (which writes their bytes); it depends on neither."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message

from xds import wire

# Field numbers of envoy.service.discovery.v3.Resource and google.protobuf.Any.
_RESOURCE_VERSION = 1
_RESOURCE_BODY = 2
_RESOURCE_NAME = 3
_RESOURCE_ALIASES = 4
_ANY_TYPE_URL = 1
_ANY_VALUE = 2
# Both DiscoveryResponse.resources (Any) and DeltaDiscoveryResponse.resources
# (Resource) are field 2 of their response message.
RESPONSE_RESOURCES_FIELD = 2


class Resource:
    """One named xDS resource: its serialized message, content version and wire forms.

    The version is a hash of the bytes, so identical content always has the
    same version: a rebuild that produces the same bytes is not a change, and a
    reconnecting client that echoes a version in ``initial_resource_versions``
    is not sent that resource again.
    """

    __slots__ = (
        "_any",
        "_delta_field",
        "_delta_field_aliased",
        "_sotw_field",
        "aliases",
        "body",
        "groups",
        "name",
        "type_url",
        "version",
    )

    def __init__(
        self,
        type_url: str,
        name: str,
        body: bytes,
        aliases: Iterable[str] = (),
        groups: Iterable[str] = (),
    ) -> None:
        """``groups``: names this resource is implied by, for clients that subscribe by
        name (a workload is in the group of each of its services and of its node): a
        subscription to a name also covers the resources in that name's group. Derived
        from the body, so the version covers them; never on the wire."""
        self.type_url = type_url
        self.name = name
        self.body = body
        self.aliases = tuple(aliases)
        self.groups = tuple(groups)
        self.version = hashlib.blake2b(body, digest_size=8).hexdigest()
        self._any: bytes | None = None
        self._delta_field: bytes | None = None
        self._delta_field_aliased: bytes | None = None
        self._sotw_field: bytes | None = None

    @classmethod
    def from_message(
        cls,
        type_url: str,
        name: str,
        message: Message,
        aliases: Iterable[str] = (),
        groups: Iterable[str] = (),
    ) -> Resource:
        # Deterministic so that map fields (e.g. Workload.services) hash stably.
        return cls(type_url, name, message.SerializeToString(deterministic=True), aliases, groups)

    def any_bytes(self) -> bytes:
        """The resource as a serialized ``google.protobuf.Any``."""
        if self._any is None:
            self._any = wire.string_field(_ANY_TYPE_URL, self.type_url) + wire.length_delimited(
                _ANY_VALUE, self.body
            )
        return self._any

    def delta_field(self, aliases: bool = False) -> bytes:
        """``DeltaDiscoveryResponse.resources`` entry (a ``Resource``), tag included.

        ``aliases``: with the resource's aliases, which only a client that subscribes by
        name needs (an on-demand ztunnel looking up ``<network>/<ip>``); as istiod, a
        wildcard client is sent none (4% of a full ztunnel state)."""
        if aliases and self.aliases:
            if self._delta_field_aliased is None:
                self._delta_field_aliased = self._encode_delta(self.aliases)
            return self._delta_field_aliased
        if self._delta_field is None:
            self._delta_field = self._encode_delta(())
        return self._delta_field

    def _encode_delta(self, aliases: tuple[str, ...]) -> bytes:
        encoded = (
            wire.string_field(_RESOURCE_VERSION, self.version)
            + wire.length_delimited(_RESOURCE_BODY, self.any_bytes())
            + wire.string_field(_RESOURCE_NAME, self.name)
            + b"".join(wire.length_delimited(_RESOURCE_ALIASES, a.encode()) for a in aliases)
        )
        return wire.length_delimited(RESPONSE_RESOURCES_FIELD, encoded)

    def sotw_field(self) -> bytes:
        """``DiscoveryResponse.resources`` entry (an ``Any``), tag included."""
        if self._sotw_field is None:
            self._sotw_field = wire.length_delimited(RESPONSE_RESOURCES_FIELD, self.any_bytes())
        return self._sotw_field

    def __reduce__(
        self,
    ) -> tuple[object, tuple[str, str, bytes, tuple[str, ...], tuple[str, ...], str]]:
        # What crosses to a serving process: the bytes and their version (not hashed
        # again there), without the wire forms, which each process builds on first use.
        return (
            _restore,
            (self.type_url, self.name, self.body, self.aliases, self.groups, self.version),
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Resource)
            and self.type_url == other.type_url
            and self.name == other.name
            and self.body == other.body
            and self.aliases == other.aliases
        )

    def __hash__(self) -> int:
        return hash((self.type_url, self.name, self.version))

    def __repr__(self) -> str:
        return f"Resource({self.type_url.rsplit('/', 1)[-1]} {self.name!r} v={self.version})"


def _restore(
    type_url: str,
    name: str,
    body: bytes,
    aliases: tuple[str, ...],
    groups: tuple[str, ...],
    version: str,
) -> Resource:
    resource = Resource.__new__(Resource)
    resource.type_url, resource.name, resource.body = type_url, name, body
    resource.aliases, resource.groups, resource.version = aliases, groups, version
    resource._any = resource._delta_field = resource._delta_field_aliased = None
    resource._sotw_field = None
    return resource


# Scopes: which proxies share a set of resources. Every ztunnel receives the
# mesh-wide set; each waypoint gets only what is bound to it.
ZTUNNEL_SCOPE = "ztunnel"


def waypoint_scope(namespace: str, name: str) -> str:
    return f"waypoint/{namespace}/{name}"


def node_group(node: str) -> str:
    """The group of the resources that run on Kubernetes node ``node``. A ':' never
    appears in a namespace, so this cannot be a Service's ``<namespace>/<hostname>``."""
    return f"node:{node}"


@dataclass
class Update:
    """A change to one type in one scope, as translation hands it to serving."""

    scope: str
    type_url: str
    upserts: list[Resource] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    # True: ``upserts`` is the complete set; anything else of this type in the
    # scope is removed.
    replace: bool = False


def decode(type_url: str, body: bytes) -> Message:
    """Parse a resource body by its type URL (for debug views and ``xds render``).

    The message type must have been imported somewhere (translators import what
    they produce), so that the default descriptor pool knows it."""
    from google.protobuf import descriptor_pool, message_factory

    descriptor = descriptor_pool.Default().FindMessageTypeByName(type_url.rsplit("/", 1)[-1])
    message = message_factory.GetMessageClass(descriptor)()
    message.ParseFromString(body)
    return message


class ResourceWriter(Protocol):
    """The one way config reaches the streams (``serving.store.ConfigStore`` implements it).

    A writer stages changes into scopes (``upsert``, ``remove``, ``replace``,
    ``drop_scope``) and then calls ``commit``, which publishes everything staged
    at once: streams never see half a change. There are two writers, the
    pipeline (translated config) and the secret publisher (waypoints' SDS key
    pairs). Both run on the event loop and stage and commit in one synchronous
    step, so one writer's commit never carries the other's half-staged work."""

    def upsert(self, scope: str, resources: Iterable[Resource]) -> None: ...

    def remove(self, scope: str, type_url: str, names: Iterable[str]) -> None: ...

    def replace(self, scope: str, type_url: str, resources: Iterable[Resource]) -> None:
        """Make ``resources`` the whole content of one type in a scope."""

    def drop_scope(self, scope: str) -> None: ...

    def commit(self, origin: float | None = None) -> Mapping[str, Mapping[str, frozenset[str]]]:
        """Publish what was staged; returns scope -> type URL -> touched names. ``origin``:
        when the change behind it first happened (monotonic; default now)."""
