"""Key pairs for SDS: issued once per identity, rotated at half-life or on a CA change."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from xds.security.ca import CertificateAuthority
from xds.security.identity import Identity
from xds.security.keypairs import WorkloadKeyPairs
from xds.security.signer import Signer

from .support import TD, leaf_uris, new_material, openssl_verify

WAYPOINT = Identity(TD, "default", "waypoint")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signer(clock: Clock) -> Iterator[Signer]:
    signer = Signer(CertificateAuthority(new_material(), clock=clock))
    yield signer
    signer.close()


async def test_key_pair_matches_and_verifies(signer: Signer, tmp_path: Path) -> None:
    pair = await WorkloadKeyPairs(signer).get(WAYPOINT)
    key = serialization.load_pem_private_key(pair.private_key_pem, password=None)
    certs = x509.load_pem_x509_certificates(pair.certificate_chain_pem)
    assert certs[0].public_key() == key.public_key()
    assert leaf_uris(certs[0].public_bytes(serialization.Encoding.PEM).decode()) == [WAYPOINT.uri]
    result = openssl_verify(tmp_path, pair.certificate_chain_pem.decode(), pair.root_pem.decode())
    assert result.returncode == 0, result.stdout + result.stderr
    assert pair.not_after - pair.not_before == dt.timedelta(hours=24, minutes=1)
    assert "PRIVATE KEY" not in repr(pair)


async def test_cached_until_half_life(signer: Signer, clock: Clock) -> None:
    pairs = WorkloadKeyPairs(signer, clock=clock)
    first = await pairs.get(WAYPOINT)
    assert await pairs.get(WAYPOINT) is first
    assert pairs.next_refresh_at() == first.refresh_at
    assert await pairs.refresh_due() == []
    clock.now = first.refresh_at
    rotated = await pairs.refresh_due()
    assert [p.identity for p in rotated] == [WAYPOINT]
    assert rotated[0].private_key_pem != first.private_key_pem
    assert await pairs.get(WAYPOINT) is rotated[0]


async def test_ca_change_makes_everything_due(signer: Signer) -> None:
    pairs = WorkloadKeyPairs(signer)
    first = await pairs.get(WAYPOINT)
    signer.ca.replace(new_material())
    rotated = await pairs.refresh_due()
    assert len(rotated) == 1
    assert rotated[0].root_fingerprint == signer.ca.root_fingerprint != first.root_fingerprint


async def test_concurrent_gets_share_one_issuance(signer: Signer) -> None:
    pairs = WorkloadKeyPairs(signer)
    results = await asyncio.gather(*(pairs.get(WAYPOINT) for _ in range(10)))
    assert all(r is results[0] for r in results)


async def test_forget(signer: Signer) -> None:
    pairs = WorkloadKeyPairs(signer)
    await pairs.get(WAYPOINT)
    pairs.forget(WAYPOINT)
    assert pairs.cached(WAYPOINT) is None and pairs.next_refresh_at() is None
