"""``xds serve --workers N``: the processes of one control plane, supervised.

gRPC Python cannot fork once a server or channel exists, so the parent forks
first: one config process (sources, model, translation) and N serving processes
that share the ports through SO_REUSEPORT (the kernel spreads connections across
them) and apply the config process's commits. The parent only supervises: it
forwards SIGTERM/SIGINT, and restarts a process that dies unexpectedly (with
backoff, so a process that cannot start does not spin).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path
from types import FrameType

from xds.cpus import CGROUP, usable_cpus

log = logging.getLogger("xds.workers")

_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
CANNOT_START = 78
"""The exit code of a process whose ``serve`` raised, i.e. failed to start (a port in
use, an unusable CA, a refused credential): starting it again would fail the same
way, so everything stops and ``run_workers`` raises ``CannotStart`` with the reason."""


MAX_DEFAULT_WORKERS = 8
"""Each serving process holds a replica of the mesh model: past a few, memory grows
faster than throughput (``--workers`` goes further when asked)."""


def default_workers(cgroup: Path = CGROUP) -> int:
    """Serving processes when ``--workers`` is not given: see ``workers_for``."""
    return workers_for(usable_cpus(cgroup))


def workers_for(cpus: int) -> int:
    """One serving process per usable CPU, up to ``MAX_DEFAULT_WORKERS``; 0 (a single
    process) with one CPU."""
    return min(cpus, MAX_DEFAULT_WORKERS) if cpus > 1 else 0


def _death_signal() -> Callable[[], None]:
    """What a child calls to be sent SIGTERM when the supervisor dies, even by SIGKILL
    (else the config process would live on, holding the leader Lease and the commit
    stream). Loaded here, in the parent: a child runs as little as possible."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the supervisor's SIGTERM only
        return lambda: None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


class CannotStart(RuntimeError):
    """A process could not start; the message is its reason."""


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_workers(
    count: int, serve: Callable[[int], int], vital: Collection[int] = frozenset()
) -> int:
    """Run ``serve(index)`` in ``count`` forked processes until told to stop.

    Returns 0 after a requested stop, 1 when every process, or one of the ``vital``
    ones (the config process), keeps failing."""
    children: dict[int, int] = {}  # pid -> worker index
    failures: dict[int, int] = {}
    stopping = False
    failed = False
    parent = os.getpid()
    die_with_parent = _death_signal()
    reasons_in, reasons_out = os.pipe()
    os.set_blocking(reasons_in, False)

    def start(index: int) -> None:
        # A stop signal must not fall between the fork and the bookkeeping on either
        # side: in the parent, stop() would miss a child not yet recorded (and wait for
        # it forever); in the child, the parent's handler would swallow it. Blocked
        # here, it is delivered once each side is ready for it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        if stopping:  # told to stop just before: start nothing more
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            return
        pid = os.fork()
        if pid == 0:
            die_with_parent()
            if os.getppid() != parent:  # it died before that took effect
                os.kill(os.getpid(), signal.SIGTERM)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            code = 1
            try:
                code = serve(index)
            except BaseException as error:
                code = CANNOT_START
                # One write below PIPE_BUF: never interleaved with another process's.
                os.write(reasons_out, f"{error}\n".encode()[:4000])
            finally:
                os._exit(code)
        children[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # What is imported by now (the whole program) is shared with the children until
    # written to; the collector would write to every object it visits, so they are left
    # out of its reach and stay shared.
    gc.freeze()
    for index in range(count):
        start(index)
    log.info("workers started", extra={"workers": count, "pids": ",".join(map(str, children))})

    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children or stopping:
            children.pop(pid, None)
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code == CANNOT_START:
            stop(signal.SIGTERM, None)
            failed = True
            continue
        failures[index] = failures.get(index, 0) + 1
        exhausted = {i for i, n in failures.items() if n >= len(_RESTART_BACKOFF)}
        if len(exhausted) == count or exhausted & set(vital):
            log.error("worker keeps failing; giving up", extra={"worker": index})
            stop(signal.SIGTERM, None)
            failed = True
            continue
        delay = _RESTART_BACKOFF[min(failures[index], len(_RESTART_BACKOFF)) - 1]
        log.warning(
            "worker exited; restarting",
            extra={"worker": index, "pid": pid, "exit_code": code, "in_s": delay},
        )
        time.sleep(delay)
        start(index)
    os.close(reasons_out)
    with os.fdopen(reasons_in, "rb") as reasons:
        reason = (reasons.read() or b"").decode(errors="replace").partition("\n")[0]
    if reason:
        raise CannotStart(reason)
    return 1 if failed or not stopping else 0
