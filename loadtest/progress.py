"""Progress lines while a run goes on: ``[  12.3s] server: 640/1000 synced ...``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO = sys.stdout, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self._started = time.monotonic()
        self._last: dict[str, float] = {}

    def line(self, text: str) -> None:
        if not self._quiet:
            print(
                f"[{time.monotonic() - self._started:7.1f}s] {text}", file=self._stream, flush=True
            )

    def every(self, seconds: float, topic: str, text: str) -> None:
        """Print ``text`` unless a line on ``topic`` was printed less than ``seconds`` ago."""
        now = time.monotonic()
        if now - self._last.get(topic, -seconds) >= seconds:
            self._last[topic] = now
            self.line(text)
