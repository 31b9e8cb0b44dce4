"""The batching signer: off the loop, one failure per bad request, batches under load."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from xds.security import signer as signer_module
from xds.security.ca import (
    CertificateAuthority,
    CsrError,
    IssuedCertificate,
    KeyAlgorithm,
    SigningMaterial,
    generate_root,
)
from xds.security.identity import Identity
from xds.security.signer import Signer

from .support import TD, leaf_uris, make_csr

APP = Identity(TD, "default", "app")
HOUR = dt.timedelta(hours=1)


class RecordingCa(CertificateAuthority):
    """Remembers which thread signed, and can be slowed down."""

    delay = 0.0
    threads: set[int]

    def sign_csr(
        self, csr_pem: str | bytes, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        self.threads.add(threading.get_ident())
        time.sleep(self.delay)
        return super().sign_csr(csr_pem, identity, ttl)


@pytest.fixture
def ca() -> RecordingCa:
    key = KeyAlgorithm.EC_P256.generate()
    root = generate_root(key, organization=TD)
    ca = RecordingCa(SigningMaterial(key, root, (), (root,)))
    ca.threads = set()
    return ca


@pytest.fixture
def signer(ca: RecordingCa) -> Iterator[Signer]:
    signer = Signer(ca)
    yield signer
    signer.close()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    original = signer_module._run_all

    def counting(works: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        sizes.append(len(works))
        return original(works)

    monkeypatch.setattr(signer_module, "_run_all", counting)
    return sizes


async def test_signs_on_another_thread(signer: Signer, ca: RecordingCa) -> None:
    issued = await signer.sign_csr(make_csr(), APP, HOUR)
    assert leaf_uris(issued.leaf_pem) == [APP.uri]
    assert ca.threads and threading.get_ident() not in ca.threads


async def test_a_bad_csr_fails_alone_within_a_batch(
    signer: Signer, ca: RecordingCa, batches: list[int]
) -> None:
    ca.delay = 0.002
    csrs = [make_csr() if i % 3 else "garbage" for i in range(30)]
    results = await asyncio.gather(
        *(signer.sign_csr(c, APP, HOUR) for c in csrs), return_exceptions=True
    )
    for csr, result in zip(csrs, results, strict=True):
        if csr == "garbage":
            assert isinstance(result, CsrError)
        else:
            assert isinstance(result, IssuedCertificate)
    # The first request went alone; the rest queued behind it and went together.
    assert sum(batches) == 30
    assert batches[0] == 1 and len(batches) <= 3


async def test_lone_requests_do_not_wait(signer: Signer, batches: list[int]) -> None:
    for _ in range(3):
        await signer.sign_csr(make_csr(), APP, HOUR)
    assert batches == [1, 1, 1]


async def test_max_batch_is_respected(ca: RecordingCa, batches: list[int]) -> None:
    signer = Signer(ca, max_batch=4)
    ca.delay = 0.001
    await asyncio.gather(*(signer.sign_csr(make_csr(), APP, HOUR) for _ in range(13)))
    signer.close()
    assert max(batches) <= 4 and sum(batches) == 13


async def test_a_cancelled_caller_does_not_disturb_the_others(
    signer: Signer, ca: RecordingCa
) -> None:
    ca.delay = 0.05
    first = asyncio.create_task(signer.sign_csr(make_csr(), APP, HOUR))
    second = asyncio.create_task(signer.sign_csr(make_csr(), APP, HOUR))
    third = asyncio.create_task(signer.sign_csr(make_csr(), APP, HOUR))
    await asyncio.sleep(0.01)
    second.cancel()
    assert isinstance(await first, IssuedCertificate)
    assert isinstance(await third, IssuedCertificate)
    with pytest.raises(asyncio.CancelledError):
        await second


async def test_key_pairs(signer: Signer) -> None:
    key_pem, issued = await signer.issue_key_pair(APP, HOUR)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert leaf_uris(issued.leaf_pem) == [APP.uri]


async def test_closed_signer_fails_every_queued_request(ca: RecordingCa) -> None:
    signer = Signer(ca)
    signer.close()
    results = await asyncio.gather(
        *(signer.sign_csr(make_csr(), APP, HOUR) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
