"""Test helpers: manifests in, decoded ztunnel resources out.

Objects are built through the model's own parser from small YAML snippets
(``tests.builders.yaml_text`` writes them from manifests), so every case goes
through the same path as a real manifest directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address

from google.protobuf import text_format
from google.protobuf.message import Message

from tests import builders
from tests.builders import mesh_store, parse_yaml, yaml_text
from xds import type_urls
from xds.model import MeshConfig
from xds.proto.istio.security import authorization_pb2 as authz
from xds.proto.istio.workload import workload_pb2 as wl
from xds.resources import ZTUNNEL_SCOPE, Resource, Update
from xds.translate.ztunnel import ZtunnelTranslator

CONFIG = MeshConfig(cluster_id="cluster0")
"""Like upstream's unit tests: a named cluster, default trust domain and suffix."""

NETWORK = yaml_text(
    builders.namespace("istio-system", labels={"topology.istio.io/network": "net1"})
)
"""The root namespace naming the local network: net1."""


def ip(text: str) -> bytes:
    """Raw address bytes, as the workload API carries them."""
    return ip_address(text).packed


@dataclass
class Output:
    """Everything ztunnel would hold after applying some updates."""

    addresses: dict[str, Resource] = field(default_factory=dict)
    authorizations: dict[str, Resource] = field(default_factory=dict)

    def apply(self, updates: Iterable[Update]) -> None:
        for update in updates:
            assert update.scope == ZTUNNEL_SCOPE
            table = self.addresses if update.type_url == type_urls.ADDRESS else self.authorizations
            if update.replace:
                table.clear()
            for name in update.removals:
                table.pop(name, None)
            for resource in update.upserts:
                assert resource.type_url == update.type_url
                table[resource.name] = resource

    def workload(self, name: str) -> wl.Workload:
        address = wl.Address.FromString(self.addresses[name].body)
        assert address.WhichOneof("type") == "workload"
        return address.workload

    def service(self, name: str) -> wl.Service:
        address = wl.Address.FromString(self.addresses[name].body)
        assert address.WhichOneof("type") == "service"
        return address.service

    def authorization(self, name: str) -> authz.Authorization:
        return authz.Authorization.FromString(self.authorizations[name].body)

    def workload_names(self) -> set[str]:
        return {
            name
            for name in self.addresses
            if wl.Address.FromString(self.addresses[name].body).HasField("workload")
        }

    def service_names(self) -> set[str]:
        return set(self.addresses) - self.workload_names()


def translate(manifests: str, config: MeshConfig = CONFIG) -> Output:
    """A full translation of ``manifests``."""
    store = mesh_store(*parse_yaml(manifests), config=config)
    output = Output()
    output.apply(ZtunnelTranslator().translate(store, None))
    return output


def assert_proto(actual: Message, expected: Message) -> None:
    """Whole-message equality, with a readable text diff on failure."""
    assert text_format.MessageToString(actual) == text_format.MessageToString(expected)
    assert actual == expected


def pod_workload(name: str, namespace: str = "ns1", **fields: object) -> wl.Workload:
    """The fields every pod Workload in these tests shares, plus ``fields``."""
    base: dict[str, object] = {
        "uid": f"cluster0//Pod/{namespace}/{name}",
        "name": name,
        "namespace": namespace,
        "service_account": "default",
        "cluster_id": "cluster0",
        "workload_type": wl.POD,
        "workload_name": name,
        "canonical_name": name,
        "canonical_revision": "latest",
    }
    base.update(fields)
    return wl.Workload(**base)  # type: ignore[arg-type]
