"""``xds serve --workers N``: several serving processes sharing the ports.

gRPC Python cannot fork once a server or channel exists, so the parent forks
first and each worker then builds its whole control plane (sources, model,
servers) like an istiod replica; the kernel spreads connections across the
workers through SO_REUSEPORT. The parent only supervises: it forwards
SIGTERM/SIGINT, and restarts a worker that dies unexpectedly (with backoff,
so a worker that cannot start does not spin).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("xds.workers")

_RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def run_workers(count: int, serve: Callable[[int], int]) -> int:
    """Run ``serve(index)`` in ``count`` forked processes until told to stop.

    Returns 0 after a requested stop, 1 if every worker failed to start."""
    children: dict[int, int] = {}  # pid -> worker index
    failures: dict[int, int] = {}
    stopping = False

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
        failures[index] = failures.get(index, 0) + 1
        if len(failures) == count and all(n >= len(_RESTART_BACKOFF) for n in failures.values()):
            log.error("every worker keeps failing; giving up")
            stop(signal.SIGTERM, None)
            continue
        delay = _RESTART_BACKOFF[min(failures[index], len(_RESTART_BACKOFF)) - 1]
        log.warning(
            "worker exited; restarting",
            extra={"worker": index, "pid": pid, "exit_code": code, "in_s": delay},
        )
        time.sleep(delay)
        start(index)
    return 0 if stopping else 1
