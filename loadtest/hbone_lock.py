"""One waypoint run at a time on this machine.

The served waypoint config listens on 0.0.0.0:15008 and tunnels to
``<pod>:15008`` (fixed by the wire contract). Envoy binds with SO_REUSEPORT, so
a second run would silently share connections with the first. The benchmark
and the end-to-end tests therefore take one machine-wide lock, and refuse to
start while anything else listens on the port.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

HBONE_PORT: Final = 15008
LOCK_FILE: Final = Path(tempfile.gettempdir()) / "xds-waypoint-hbone-15008.lock"


def listeners_on_port(port: int) -> list[str]:
    """Local addresses of LISTEN sockets on ``port`` (any owner), from /proc/net."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.append(address)
    return found


@contextlib.contextmanager
def exclusive_hbone_port(timeout: float = 300.0) -> Iterator[None]:
    """Hold the machine-wide lock for port 15008; fail if someone else listens there."""
    LOCK_FILE.touch(exist_ok=True)
    with LOCK_FILE.open("r+") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            others = listeners_on_port(HBONE_PORT)
            if others:
                raise RuntimeError(
                    f"something already listens on port {HBONE_PORT} ({others}): with "
                    "SO_REUSEPORT it would share the waypoint's connections"
                )
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
