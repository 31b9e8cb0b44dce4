"""The result of a run: named figures with their targets, as a table and as JSON.

The JSON written by ``--report`` has exactly this shape::

    {"scenario": "ambient-1k", "commit": "<git rev-parse HEAD>",
     "metrics": {"<name>": {"value": 0.21, "unit": "s", "target": 0.25, "met": true}}}

``target`` is null for figures without one (``met`` is then null too). A
figure that could not be measured in a run is absent, and the reason is
printed in the run's notes.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class Better(Enum):
    LOWER = "<="
    HIGHER = ">="


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    target: float | None = None
    better: Better = Better.LOWER
    label: str = ""
    """Human wording for the table (e.g. "one pod change, 1,000 ztunnels, p99")."""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.better is Better.LOWER:
            return self.value <= self.target
        return self.value >= self.target

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "target": self.target, "met": self.met}


@dataclass
class Report:
    scenario: str
    commit: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        target: float | None = None,
        *,
        better: Better = Better.LOWER,
        label: str = "",
    ) -> None:
        """Record a figure; NaN/inf values are not figures and are left out."""
        if not math.isfinite(value):
            return
        self.metrics[name] = Metric(name, round(value, 6), unit, target, better, label)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "commit": self.commit,
            "metrics": {name: m.as_json() for name, m in self.metrics.items()},
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")

    def missed(self) -> list[Metric]:
        return [m for m in self.metrics.values() if m.met is False]

    def table(self) -> str:
        """Every figure with its target beside it; configuration rows last."""
        rows = [("figure", "value", "target", "", "what")]
        ordered = sorted(self.metrics.values(), key=lambda m: m.name.startswith("config."))
        for metric in ordered:
            target = (
                ""
                if metric.target is None
                else f"{metric.better.value} {_number(metric.target)} {metric.unit}"
            )
            verdict = {None: "", True: "met", False: "MISSED"}[metric.met]
            rows.append(
                (
                    metric.name,
                    f"{_number(metric.value)} {metric.unit}",
                    target,
                    verdict,
                    metric.label,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for index, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join((*cells, row[4])).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def git_commit(repo: Path) -> str:
    """``git rev-parse HEAD`` of ``repo``, or "unknown" outside a checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip()
