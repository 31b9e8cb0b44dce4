"""CPU pinning of the processes of a run (``--server-cpus``, ``--client-cpus``).

With the generator on the same cores as the server, nothing stops one from taking the
other's CPU: pinning each side to its own cores makes a figure say what it measures.
Linux only (``os.sched_setaffinity``); a process pins itself before it starts any thread,
so every thread it makes (gRPC's included) inherits the set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

Cpus = frozenset[int]


def parse_cpus(text: str) -> Cpus:
    """``"0"``, ``"0,2"``, ``"0-3"``, ``"0-1,4"``; refuses CPUs this machine lacks."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{text!r} is not a CPU list (e.g. 0,2-3)")
        cpus.update(range(int(first), int(last or first) + 1))
    available = os.sched_getaffinity(0)
    if not cpus or not cpus <= available:
        raise ValueError(f"{text!r}: this process may use CPUs {sorted(available)}")
    return frozenset(cpus)


def pin(cpus: Iterable[int] | None) -> None:
    """Pin the calling process (and the threads it starts from now on) to ``cpus``."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))


def describe(cpus: Iterable[int] | None) -> str:
    return ",".join(str(c) for c in sorted(cpus)) if cpus else "any"
