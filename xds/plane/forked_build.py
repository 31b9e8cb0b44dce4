"""Start-up on more than one core: a translator's first full build in a forked child.

The config process's first build runs translators whose work is independent (on a
10k-pod mesh ztunnel's ~0.4 s, the waypoints' ~0.6 s), one after the other on one core
while the other idles. A forked child shares the model copy-on-write, runs one
translator and hands back only its updates: serialized resources, ~5 MB pickled in
~10 ms. What the translator remembers between builds (its memo) stays in the child, so
the parent's copy of it is *cold* afterwards and needs a full build of its own (see
``Pipeline.warm``), which the pipeline runs once the first commit is out.

Only for a process with no gRPC object and no thread that could hold a lock the child
needs (the config process of a split server): the child runs pure translation code,
writes to a pipe and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
from typing import NoReturn

from xds.model.mesh import Mesh
from xds.resources import Update
from xds.translate.base import Translator


class ForkedBuildFailed(Exception):
    """The child died or gave nothing back; the caller translates itself instead."""


class ForkedBuild:
    """``translator.translate(mesh, None)``, started in a forked child at construction."""

    def __init__(self, translator: Translator, mesh: Mesh) -> None:
        self.translator = translator
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            raise
        if pid == 0:
            os.close(read)
            _child(translator, mesh, write)
        os.close(write)
        self.pid = pid
        self._read = read

    def updates(self) -> list[Update]:
        """The child's updates; waits for it. Raises ``ForkedBuildFailed``."""
        with open(self._read, "rb") as pipe:  # the child writes until it is read
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or not data:
            raise ForkedBuildFailed(
                f"{type(self.translator).__name__} in process {self.pid} exited with {code}"
            )
        updates: list[Update] = pickle.loads(data)
        return updates

    def discard(self) -> None:
        """Stop the child and forget its build (the caller's own build failed)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.close(self._read)
        os.waitpid(self.pid, 0)


def _child(translator: Translator, mesh: Mesh, write: int) -> NoReturn:
    # No collection in here: it would finalize the parent's garbage, and a grpc.aio
    # object finalized in a forked child joins gRPC's poller thread, which this child
    # does not have (a forked test process spun there, another crashed). The child lives
    # for one build; what the build leaves behind goes with it.
    gc.disable()
    code = 1
    try:
        # The parent's event loop owns these: a Ctrl-C reaching the whole process group
        # must end this child, not wake the parent's loop through the shared wakeup fd.
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        data = pickle.dumps(translator.translate(mesh, None), pickle.HIGHEST_PROTOCOL)
        with open(write, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        # Nothing of the parent's (loop, sockets, atexit handlers) may run here; a
        # failure shows as the exit code, and the parent's own build then reports it.
        with contextlib.suppress(BaseException):
            os.close(write)
        os._exit(code)
