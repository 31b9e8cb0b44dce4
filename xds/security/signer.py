"""CA work off the event loop, in batches.

Parsing a CSR, generating a key and signing a certificate take 0.1-5 ms of
CPU each (more with an RSA-4096 CA). Done on the event loop, a reconnect storm
of CSRs would stall every xDS stream, so ``Signer`` runs that work on a small
thread pool.

``cryptography`` holds the GIL while it signs, so threads add no parallel
throughput; what a thread hop does add is overhead (a wake-up and a GIL
hand-off each way, measured at ~0.25 ms per certificate, more than the
signature itself with a P-256 CA). Hence batching: while the pool is busy,
requests queue on the loop, and the next job takes everything queued (up to
``max_batch``) and hands the results back in one loop callback. An idle
signer dispatches at once, so a lone request waits for nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from xds.security.ca import CertificateAuthority, IssuedCertificate, key_to_pem
from xds.security.identity import Identity

T = TypeVar("T")

DEFAULT_WORKERS: Final = 1
DEFAULT_MAX_BATCH: Final = 32

_Task = tuple[Callable[[], Any], "asyncio.Future[Any]"]


class Signer:
    """Async front of a ``CertificateAuthority``; owns its thread pool.

    Use from one event loop. ``workers`` > 1 only helps with a CA whose
    operations release the GIL (none today); it is kept for that case.
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        workers: int = DEFAULT_WORKERS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError("workers and max_batch must be positive")
        self.ca = ca
        self._workers = workers
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ca-sign")
        self._queue: list[_Task] = []
        self._busy = 0

    async def sign_csr(
        self, csr_pem: str | bytes, identity: Identity, ttl: dt.timedelta
    ) -> IssuedCertificate:
        """``CertificateAuthority.sign_csr`` on the pool (raises ``CsrError`` etc. alike)."""
        return await self._run(partial(self.ca.sign_csr, csr_pem, identity, ttl))

    async def issue_key_pair(
        self, identity: Identity, ttl: dt.timedelta
    ) -> tuple[bytes, IssuedCertificate]:
        """A new P-256 key and a certificate for it: ``(PKCS#8 key PEM, certificate)``."""
        return await self._run(partial(self._issue_key_pair, identity, ttl))

    def _issue_key_pair(
        self, identity: Identity, ttl: dt.timedelta
    ) -> tuple[bytes, IssuedCertificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self.ca.issue_for_identity(key.public_key(), identity, ttl)
        return key_to_pem(key), issued

    def close(self) -> None:
        """Stops the pool; call once the servers using it have stopped."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((work, future))
        self._dispatch(loop)
        return await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._queue and self._busy < self._workers:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                job = loop.run_in_executor(self._executor, _run_all, [w for w, _ in batch])
            except RuntimeError as exc:  # the pool was shut down
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._busy += 1
            job.add_done_callback(partial(self._finished, loop, batch))

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: Sequence[_Task],
        job: asyncio.Future[list[tuple[bool, Any]]],
    ) -> None:
        self._busy -= 1
        if job.cancelled() or job.exception() is not None:
            # The pool itself failed (e.g. shut down): every waiter learns it.
            error = job.exception() if not job.cancelled() else asyncio.CancelledError()
            outcomes: list[tuple[bool, Any]] = [(False, error)] * len(batch)
        else:
            outcomes = job.result()
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up (cancelled); nothing to deliver
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._dispatch(loop)


def _run_all(works: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    """Runs on the pool: every item's result or exception, so one bad CSR fails alone."""
    outcomes: list[tuple[bool, Any]] = []
    for work in works:
        try:
            outcomes.append((True, work()))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes
