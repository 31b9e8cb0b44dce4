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
import logging
import os
import signal
import time
from collections.abc import Callable, Collection
from types import FrameType

log = logging.getLogger("xds.workers")

_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
CANNOT_START = 78
"""The exit code of a process whose ``serve`` raised, i.e. failed to start (a port in
use, an unusable CA, a refused credential): starting it again would fail the same
way, so everything stops and ``run_workers`` raises ``CannotStart`` with the reason."""


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
    reasons_in, reasons_out = os.pipe()
    os.set_blocking(reasons_in, False)
    told: set[int] = set()  # children sent SIGTERM

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
        tell_next()

    def tell_next() -> None:
        # The serving processes first, so that they close their streams while the
        # config process (vital) still feeds them; the config process once they are gone.
        serving = [pid for pid, index in children.items() if index not in vital]
        for pid in serving or list(children):
            if pid not in told:
                told.add(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
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
            if stopping:
                tell_next()
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
