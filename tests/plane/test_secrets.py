"""SecretPublisher: waypoint SDS secrets published while held, rotated, dropped when released."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.plane.secrets import SecretPublisher, identity_scope
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
