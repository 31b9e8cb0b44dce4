"""Sampling the server with py-spy during a phase (``--profile FILE``).

py-spy is not a dependency of the project; install it into the venv for
profiling (``.venv/bin/pip install py-spy``). The output is py-spy's "raw"
format: one collapsed stack per line with its sample count, the input of
flamegraph.pl and speedscope; ``summarize`` prints the top frames.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PHASES = ("connect", "changes")


def py_spy() -> str:
    """The py-spy executable: next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


class Profile:
    """py-spy recording the process trees under ``pids`` until ``stop``."""

    def __init__(self, pids: list[int], output: Path, rate: int = 100) -> None:
        self.output = output
        self._processes = []
        for number, pid in enumerate(pids):
            target = output if len(pids) == 1 else output.with_suffix(f".{number}{output.suffix}")
            self._processes.append(
                subprocess.Popen(
                    [
                        py_spy(),
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--rate",
                        str(rate),
                        "--format",
                        "raw",
                        "--output",
                        str(target),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )

    def stop(self) -> None:
        for process in self._processes:
            process.send_signal(signal.SIGINT)
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def summarize(path: Path, top: int = 30) -> str:
    """The frames with the most samples (inclusive and self) in a raw py-spy profile."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r" \((.*?):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{total} samples; inclusive:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(top // 2)]
    return "\n".join(lines) if total else "no samples"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m loadtest.profiling", description="Summarize a raw py-spy profile."
    )
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    print(summarize(args.profile, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
