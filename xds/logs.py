"""Structured, one-line-per-event logs with a level per scope.

Scopes are the logger names under ``xds.`` (``ads``, ``ca``, ``file``, ``kube``,
``waypoint``, ...). Levels are given as ``info`` (all scopes) or as istiod's
``--log_output_level`` style list, e.g. ``ads:debug,ca:warn,default:info``,
and can be changed at runtime (``/debug/loglevel``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR, "none": logging.CRITICAL + 1}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message", "asctime", "taskName"}
ROOT = "xds"


class LineFormatter(logging.Formatter):
    """``<time> <level> <scope> <message> key=value ...`` with extras quoted when needed."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        scope = record.name[len(ROOT) + 1:] if record.name.startswith(ROOT + ".") else record.name
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname.lower(), scope or "default",
                 record.getMessage()]
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                parts.append(f"{key}={_quote(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def parse_levels(spec: str) -> dict[str, int]:
    """``"info"`` or ``"ads:debug,default:info"`` -> {scope: level}; "default" is every scope."""
    levels: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        scope, _, level = item.rpartition(":")
        if level.lower() not in _LEVELS:
            raise ValueError(f"unknown log level {level!r} (use one of {', '.join(_LEVELS)})")
        levels[scope or "default"] = _LEVELS[level.lower()]
    return levels


def set_levels(spec: str) -> None:
    for scope, level in parse_levels(spec).items():
        name = ROOT if scope == "default" else f"{ROOT}.{scope}"
        logging.getLogger(name).setLevel(level)


def current_levels() -> dict[str, str]:
    names = {v: k for k, v in _LEVELS.items() if k not in ("warning",)}
    result = {"default": names.get(logging.getLogger(ROOT).level, "info")}
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith(ROOT + ".") and isinstance(logger, logging.Logger) and logger.level:
            result[name[len(ROOT) + 1:]] = names.get(logger.level, str(logger.level))
    return result


def configure(spec: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter())
    root = logging.getLogger(ROOT)
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.INFO)
    set_levels(spec)
