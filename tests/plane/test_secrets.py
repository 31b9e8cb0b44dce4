"""SecretPublisher: waypoint SDS secrets published while held, rotated, dropped when released."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.model.core import Secret
from xds.model.frozen import FrozenMap
from xds.model.mesh import MeshStore
from xds.model.meta import ObjectMeta
from xds.plane.secrets import (
    KeyAccess,
    SecretPublisher,
    identity_scope,
    keys_readable_in_own_namespace,
)
from xds.security.ca import CertificateAuthority
from xds.security.identity import Identity
from xds.security.keypairs import WorkloadKeyPairs
from xds.security.signer import Signer
from xds.serving.store import ConfigStore
from xds.tasks import cancel_and_wait
from xds.type_urls import SECRET

from ..helpers import wait_until
from ..security.support import TD, new_material

WAYPOINT = Identity(TD, "shop", "waypoint")


@pytest.fixture
def signer() -> Iterator[Signer]:
    signer = Signer(CertificateAuthority(new_material()))
    yield signer
    signer.close()


def chain(store: ConfigStore) -> bytes:
    resource = store.view(identity_scope(WAYPOINT)).get(SECRET, "default")
    assert resource is not None
    secret = secret_pb2.Secret.FromString(resource.body)
    return bytes(secret.tls_certificate.certificate_chain.inline_bytes)


async def test_held_secrets_are_published_and_dropped_with_the_last_holder(
    signer: Signer,
) -> None:
    store = ConfigStore()
    publisher = SecretPublisher(WorkloadKeyPairs(signer), store)
    scope = await publisher.acquire(WAYPOINT)
    assert scope == identity_scope(WAYPOINT)
    assert sorted(store.view(scope).resources(SECRET)) == ["ROOTCA", "default"]
    first = chain(store)
    # A second stream of the same identity shares the key pair.
    await publisher.acquire(WAYPOINT)
    assert chain(store) == first
    publisher.release(WAYPOINT)
    assert sorted(store.view(scope).resources(SECRET)) == ["ROOTCA", "default"]
    # The last one gone: the private key is not kept anywhere.
    publisher.release(WAYPOINT)
    assert store.view(scope).resources(SECRET) == {}
    # Held again: a new key pair.
    await publisher.acquire(WAYPOINT)
    assert chain(store) != first


async def test_a_ca_change_rotates_what_is_held(signer: Signer) -> None:
    store = ConfigStore()
    publisher = SecretPublisher(WorkloadKeyPairs(signer), store)
    await publisher.acquire(WAYPOINT)
    first = chain(store)
    task = asyncio.ensure_future(publisher.run())
    try:
        signer.ca.replace(new_material())
        publisher.ca_changed()
        await wait_until(lambda: chain(store) != first, within=10)
    finally:
        await cancel_and_wait(task)


def with_credentials(
    signer: Signer, mesh: MeshStore, may_read_keys: KeyAccess = keys_readable_in_own_namespace
) -> tuple[SecretPublisher, ConfigStore]:
    """A publisher that reads the Secrets of ``mesh``, and the store it writes."""
    store = ConfigStore()
    publisher = SecretPublisher(
        WorkloadKeyPairs(signer),
        store,
        secrets_in=lambda namespace: mesh.objects(Secret, namespace),
        may_read_keys=may_read_keys,
    )
    return publisher, store


def tls_secret(namespace: str, name: str, chain: bytes = b"C") -> Secret:
    data = {"tls.crt": chain, "tls.key": b"K", "ca.crt": b"A"}
    return Secret(meta=ObjectMeta(name=name, namespace=namespace), data=FrozenMap(data))


@pytest.mark.parametrize(
    ("may_read_keys", "expected"),
    [
        (True, ["ROOTCA", "default", "kubernetes://client", "kubernetes://client-cacert"]),
        (False, ["ROOTCA", "default", "kubernetes://client-cacert"]),
    ],
)
async def test_credentials_of_the_own_namespace_only(
    signer: Signer, may_read_keys: bool, expected: list[str]
) -> None:
    mesh = MeshStore()
    mesh.apply([tls_secret("shop", "client"), tls_secret("other", "theirs")])
    asked: list[Identity] = []

    async def access(identity: Identity) -> bool:
        asked.append(identity)
        return may_read_keys

    publisher, store = with_credentials(signer, mesh, access)
    scope = await publisher.acquire(WAYPOINT)
    assert sorted(store.view(scope).resources(SECRET)) == expected
    assert asked == [WAYPOINT]


async def test_a_secret_change_is_republished(signer: Signer) -> None:
    mesh = MeshStore()
    mesh.apply([tls_secret("shop", "client")])
    publisher, store = with_credentials(signer, mesh)
    scope = await publisher.acquire(WAYPOINT)

    def chain_of_client() -> bytes | None:
        resource = store.view(scope).get(SECRET, "kubernetes://client")
        if resource is None:
            return None
        secret = secret_pb2.Secret.FromString(resource.body)
        return bytes(secret.tls_certificate.certificate_chain.inline_bytes)

    assert chain_of_client() == b"C"
    mesh.apply([tls_secret("shop", "client", chain=b"C2")])
    publisher.secrets_changed({"shop"})
    await wait_until(lambda: chain_of_client() == b"C2")
    mesh.apply([], [tls_secret("shop", "client").key])
    publisher.secrets_changed({"shop"})
    await wait_until(lambda: chain_of_client() is None)
    assert sorted(store.view(scope).resources(SECRET)) == ["ROOTCA", "default"]


async def test_an_unanswerable_access_check_fails_closed(signer: Signer) -> None:
    mesh = MeshStore()
    mesh.apply([tls_secret("shop", "client")])

    async def broken(identity: Identity) -> bool:
        raise OSError("API server unreachable")

    publisher, store = with_credentials(signer, mesh, broken)
    scope = await publisher.acquire(WAYPOINT)
    assert "kubernetes://client" not in store.view(scope).resources(SECRET)
    assert "kubernetes://client-cacert" in store.view(scope).resources(SECRET)
