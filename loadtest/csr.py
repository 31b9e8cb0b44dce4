"""CSR clients: CreateCertificate over the TLS port, as ztunnels ask for workload certificates.

Runs inside a client process. Two phases, the way ``loadtest.bench_ca``
measures the CA alone (here against the whole server, ADS included):

1. storm: ``closed_requests`` calls as fast as the server answers, with
   ``concurrency`` in flight, over ``connections`` TLS connections (each
   handshaken before the clock starts);
2. open loop: ``open_rate`` calls per second for ``open_seconds``, each timed
   from its scheduled send time so a stalled server cannot hide queueing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

SERVER_NAME = "istiod.istio-system.svc"

_Call = Callable[[], Awaitable[float | None]]
"""One CreateCertificate: its latency in seconds, or None if it failed."""


@dataclass(frozen=True)
class CsrJob:
    address: str
    root_pem: bytes
    token: str
    csrs: list[str]
    connections: int
    closed_requests: int
    concurrency: int
    open_rate: float
    open_seconds: float
    start_at: float  # time.monotonic(): every client process starts together


@dataclass
class CsrResult:
    closed_completed: int = 0
    closed_seconds: float = 0.0
    closed_latencies: list[float] = field(default_factory=list)
    open_latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


async def run_csr(job: CsrJob) -> CsrResult:
    result = CsrResult()
    credentials = grpc.ssl_channel_credentials(job.root_pem)
    channels = [
        grpc.aio.secure_channel(
            job.address,
            credentials,
            options=[("grpc.ssl_target_name_override", SERVER_NAME), ("loadtest.csr", i)],
        )
        for i in range(job.connections)
    ]
    stubs = [
        ca_pb2_grpc.IstioCertificateServiceStub(c)  # type: ignore[no-untyped-call]
        for c in channels
    ]
    requests = [
        ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=86400) for csr in job.csrs
    ]
    metadata = (("authorization", f"Bearer {job.token}"),)
    calls = 0

    async def call() -> float | None:
        nonlocal calls
        calls += 1
        stub = stubs[calls % len(stubs)]
        started = time.monotonic()
        try:
            await stub.CreateCertificate(
                requests[calls % len(requests)], metadata=metadata, timeout=30
            )
        except grpc.aio.AioRpcError as e:
            result.errors += 1
            result.first_error = result.first_error or f"{e.code().name}: {e.details()}"
            return None
        return time.monotonic() - started

    try:
        await asyncio.gather(
            *(stub.CreateCertificate(requests[0], metadata=metadata, timeout=30) for stub in stubs)
        )
        await asyncio.sleep(max(0.0, job.start_at - time.monotonic()))
        await _closed_loop(job, call, result)
        await _open_loop(job, call, result)
    except grpc.aio.AioRpcError as e:
        result.errors += 1
        result.first_error = result.first_error or f"{e.code().name}: {e.details()}"
    finally:
        for channel in channels:
            await channel.close()
    return result


async def _closed_loop(job: CsrJob, call: _Call, result: CsrResult) -> None:
    remaining = job.closed_requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            latency = await call()
            if latency is not None:
                result.closed_latencies.append(latency)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(max(1, job.concurrency))))
    result.closed_seconds = time.monotonic() - started
    result.closed_completed = len(result.closed_latencies)


async def _open_loop(job: CsrJob, call: _Call, result: CsrResult) -> None:
    if job.open_rate <= 0 or job.open_seconds <= 0:
        return
    interval = 1.0 / job.open_rate
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def timed(scheduled: float) -> None:
        if await call() is not None:
            result.open_latencies.append(time.monotonic() - scheduled)

    for n in range(int(job.open_rate * job.open_seconds)):
        scheduled = start + n * interval
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(timed(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
