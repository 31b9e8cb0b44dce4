"""CPU lists for --server-cpus / --client-cpus, and that pinning sticks to a process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtest.pinning import describe, parse_cpus, pin

AVAILABLE = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", {0}),
        ("0,0", {0}),
        (f"0-{AVAILABLE[-1]}", set(AVAILABLE)),
    ],
)
def test_cpu_lists(text: str, cpus: set[int]) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["", "x", "1-", "0;1", "4096"])
def test_bad_cpu_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpus(text)


def test_a_pinned_process_and_its_children_keep_the_set() -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys; "
            "print(sorted(os.sched_getaffinity(0))); sys.stdout.flush(); "
            "subprocess.run([sys.executable, '-c', "
            "'import os; print(sorted(os.sched_getaffinity(0)))'])",
        ],
        preexec_fn=lambda: pin({AVAILABLE[0]}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert child.stdout.split("\n")[:2] == [f"[{AVAILABLE[0]}]"] * 2
    assert describe(None) == "any" and describe({1, 0}) == "0,1"
