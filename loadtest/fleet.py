"""The parent's handle on the client processes that run the simulated proxies.

Proxies are dealt round-robin over the processes; each process opens its
share at ``rate / processes`` connections per second, so together they
open ``rate`` per second (the default 1,000/s is the "100 per 100 ms" that
keeps gRPC's client from failing writes when thousands of channels open at
once).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from loadtest import worker
from loadtest.consistency import Expected
from loadtest.csr import CsrJob, CsrResult
from loadtest.proxies import ProxySpec
from loadtest.tracking import Delivery, Expectation
from loadtest.worker import Endpoint, Status

_REPLY_TIMEOUT = 120.0


class ClientProcessError(RuntimeError):
    pass


class Fleet:
    def __init__(self, processes: int, cpus: frozenset[int] | None = None) -> None:
        context = mp.get_context("spawn")  # no gRPC state may cross a fork
        self._next_reconnect = 0
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker.main, args=(child, cpus), daemon=True, name="loadtest-client"
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)
        for reply in self._gather():
            if reply != "ready":
                raise ClientProcessError(f"client process failed to start: {reply!r}")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def __len__(self) -> int:
        return len(self._processes)

    # -- commands ----------------------------------------------------------------------------

    def connect(
        self,
        proxies: Sequence[ProxySpec],
        endpoint: Endpoint,
        rate: float,
        delay: float = 0.3,
        *,
        keep: bool = False,
    ) -> float:
        """Start connecting ``proxies`` at ``rate`` per second; returns the start (monotonic).
        ``keep``: every ztunnel sim holds its whole state (for ``verify``)."""
        start_at = time.monotonic() + delay
        shares: list[list[tuple[int, ProxySpec]]] = [[] for _ in self._pipes]
        for index, spec in enumerate(proxies):
            shares[index % len(shares)].append((index, spec))
        per_process = rate / len(self._pipes)
        self._each(
            [worker.Connect(share, endpoint, per_process, start_at, keep) for share in shares]
        )
        return start_at

    def track(self, keys: Sequence[str]) -> None:
        self._each([worker.Track(frozenset(keys))] * len(self._pipes))

    def expect(self, expectations: Sequence[Expectation]) -> None:
        """Tell every process about applied changes (no reply awaited)."""
        if expectations:
            for pipe in self._pipes:
                pipe.send(worker.ExpectChanges(list(expectations)))

    def status(self, details: bool = False) -> Status:
        total = Status()
        for status in self._each([worker.GetStatus(details)] * len(self._pipes)):
            total.merge(status)
        return total

    def collect(self) -> dict[int, Delivery]:
        """Every change's deliveries, summed over processes; forgets them."""
        return worker.merge_deliveries(self._each([worker.Collect()] * len(self._pipes)))

    def reconnect(self, count: int) -> int:
        """Restart ``count`` random streams (one process's share); returns how many."""
        index = self._next_reconnect % len(self._pipes)
        self._next_reconnect += 1
        return int(self._one(index, worker.Reconnect(count)))

    def verify(self, expected: dict[str, Expected]) -> list[worker.Diverged]:
        """Every proxy whose state differs from ``expected`` (see ``worker.Verify``)."""
        command = worker.Verify(expected)
        return [d for batch in self._each([command] * len(self._pipes)) for d in batch]

    def disconnect(self) -> None:
        self._each([worker.Disconnect()] * len(self._pipes))

    def csr(self, jobs: Sequence[CsrJob]) -> list[CsrResult]:
        # The jobs run for as long as their open loop says, then reply.
        longest = max((job.open_seconds for job in jobs), default=0.0)
        timeout = max(_REPLY_TIMEOUT * 5, longest + _REPLY_TIMEOUT)
        return list(self._each([worker.RunCsr(job) for job in jobs], timeout=timeout))

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(worker.Stop())
            except OSError:
                continue
        deadline = time.monotonic() + 10
        for process in self._processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)

    # -- plumbing ------------------------------------------------------------------------

    def _one(self, index: int, command: object) -> Any:
        self._pipes[index].send(command)
        return self._gather(only=index)[0]

    def _each(self, commands: Sequence[object], timeout: float = _REPLY_TIMEOUT) -> list[Any]:
        for pipe, command in zip(self._pipes, commands, strict=True):
            pipe.send(command)
        return self._gather(timeout)

    def _gather(self, timeout: float = _REPLY_TIMEOUT, only: int | None = None) -> list[Any]:
        replies = []
        deadline = time.monotonic() + timeout
        pairs = list(zip(self._pipes, self._processes, strict=True))
        for pipe, process in pairs if only is None else [pairs[only]]:
            while not pipe.poll(0.1):
                if not process.is_alive():
                    raise ClientProcessError(
                        f"client process {process.pid} died (exit code {process.exitcode})"
                    )
                if time.monotonic() > deadline:
                    raise ClientProcessError(
                        f"client process {process.pid} did not answer within {timeout:.0f} s"
                    )
            try:
                reply = pipe.recv()
            except EOFError:
                raise ClientProcessError(
                    f"client process {process.pid} closed its pipe (exit code {process.exitcode})"
                ) from None
            if isinstance(reply, BaseException):
                raise ClientProcessError(f"client process {process.pid}: {reply!r}")
            replies.append(reply)
        return replies
