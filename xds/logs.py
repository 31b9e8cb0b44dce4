"""Structured, one-line-per-event logs with a level per scope.

Scopes are the fixed logger names under ``xds.`` (``ads``, ``ca``, ``file``, ``kube``,
...; the README lists them all, a test holds the list to the code). Levels are given
as ``info`` (all scopes) or as istiod's ``--log_output_level`` style list, e.g.
``ads:debug,ca:warn,default:info``, and can be changed at runtime (``/debug/loglevel``).

Every event is one line, whatever it carries: newlines in a message (a YAML
error quotes the offending lines) are escaped, and a traceback goes into an
escaped ``stack=`` field. Level words are istiod's (``warn``, not ``warning``).
``--log-as-json`` writes the same events as JSON objects with istiod's keys
(``time``, ``level``, ``scope``, ``msg``, then the fields).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 1,
}
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}
ROOT = "xds"


# istiod's level words.
_WORDS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


def _fields(record: logging.LogRecord) -> tuple[str, str, str, str, dict[str, Any]]:
    """time, level, scope, message and the extra fields of one event."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    scope = record.name[len(ROOT) + 1 :] if record.name.startswith(ROOT + ".") else record.name
    extras = {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }
    if record.exc_info:
        extras["stack"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    level = _WORDS.get(record.levelno, record.levelname.lower())
    return (
        f"{stamp}.{int(record.msecs):03d}Z",
        level,
        scope or "default",
        record.getMessage(),
        extras,
    )


class LineFormatter(logging.Formatter):
    """``<time> <level> <scope> <message> key=value ...``: one line per event, extras quoted
    when needed."""

    def format(self, record: logging.LogRecord) -> str:
        stamp, level, scope, message, extras = _fields(record)
        parts = [stamp, level, scope, _one_line(message)]
        parts += [f"{key}={_quote(value)}" for key, value in extras.items()]
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per event: ``time``, ``level``, ``scope``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp, level, scope, message, extras = _fields(record)
        event: dict[str, Any] = {"time": stamp, "level": level, "scope": scope, "msg": message}
        for key, value in extras.items():
            event.setdefault(key, value)
        return json.dumps(event, default=str)


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n\r'):
        return '"' + _one_line(text).replace('"', '\\"') + '"'
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
            result[name[len(ROOT) + 1 :]] = names.get(logger.level, str(logger.level))
    return result


def configure(spec: str = "info", *, as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else LineFormatter())
    root = logging.getLogger(ROOT)
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.INFO)
    set_levels(spec)
