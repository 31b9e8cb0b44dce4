"""Giving the system back heap memory that bursts of big buffers leave free.

A proxy's first sync writes the whole state to it (3.9 MB per ztunnel on the 10k-pod
mesh), and gRPC copies it into buffers of its own that are freed once written. glibc's
allocator keeps freed memory in its heap, and after the first big free it raises its
mmap threshold so that later big buffers come from the heap too: after 1,040 proxies
connect, ~50 MB that nothing uses stays resident across the serving processes. A fixed
threshold would return it (every big buffer mapped and unmapped) but doubles the CPU of
a connect storm, each buffer being zero-filled page by page. ``malloc_trim`` every few
seconds, when enough is free to matter, returns it at no such cost (ambient-1k: 402 ->
350 MB with every proxy connected, the same connect CPU).

glibc only (2.33+, for ``mallinfo2``); elsewhere nothing is done.
"""

from __future__ import annotations

import asyncio
import ctypes

TRIM_INTERVAL = 5.0  # seconds
MIN_FREE = 8 << 20  # bytes freed since the last trim below which one is not worth a call


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",  # free bytes held in the heap
            "keepcost",
        )
    ]


class HeapTrimmer:
    def __init__(self, libc: ctypes.CDLL, min_free: int = MIN_FREE) -> None:
        self._libc = libc
        self._libc.mallinfo2.restype = _MallInfo2
        self._libc.malloc_trim.argtypes = [ctypes.c_size_t]
        self.min_free = min_free
        self._trimmed = 0  # free bytes right after the last trim

    @classmethod
    def for_this_process(cls, min_free: int = MIN_FREE) -> HeapTrimmer | None:
        """None unless the C library is glibc 2.33 or later."""
        try:
            libc = ctypes.CDLL(None)
        except OSError:
            return None
        if not (hasattr(libc, "malloc_trim") and hasattr(libc, "mallinfo2")):
            return None
        return cls(libc, min_free)

    def free_bytes(self) -> int:
        """What the allocator holds free (trimmed or not: a trim does not change it)."""
        return int(self._libc.mallinfo2().fordblks)

    def trim(self) -> bool:
        """Return the heap's free pages to the system if enough has been freed since the
        last trim; whether any memory was released. (A trim walks the whole heap: not
        again for memory it already returned, which still counts as free.)"""
        free = self.free_bytes()
        # Free memory reused since is resident again; what is freed above it is new.
        self._trimmed = min(self._trimmed, free)
        if free - self._trimmed < self.min_free:
            return False
        self._trimmed = free
        return bool(self._libc.malloc_trim(0))

    async def run(self, interval: float = TRIM_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.trim()
