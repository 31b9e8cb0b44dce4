"""What every ``xds`` subcommand shares: the parser class, the help format, the errors.

A usage error (``UsageError``, or argparse's own) is one line and exit code 2;
a failure at run time raises ``CommandError`` and ends as one line ``xds
<command>: <reason>`` with exit code 1. Each leaf parser sets ``run`` (the
function taking the parsed arguments and returning the exit code) and
``command_name`` (its name in those lines, e.g. ``ca init``).
"""

from __future__ import annotations

import argparse
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2


class CommandError(Exception):
    """The command could not do its work; the message is the reason, in one line."""

    @classmethod
    def of(cls, error: Exception) -> CommandError:
        """The reason in one line: ``ca/key.pem: Permission denied``, not ``[Errno 13] ...``."""
        if isinstance(error, OSError) and error.strerror:
            where = f"{error.filename}: " if error.filename else ""
            return cls(f"{where}{error.strerror}")
        return cls(str(error))


class UsageError(Exception):
    """Bad arguments: one line, exit code 2. ``command``: who says so (``xds serve``), when
    the parser knows it before the handler runs."""

    def __init__(self, message: str, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, unless there is none to show (unset, off, empty) or its help
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if (
            action.default is argparse.SUPPRESS
            or action.default in (None, False, "", [], ())
            or "default" in (action.help or "")
        ):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Usage errors raise (one line, exit 2); every flag's help shows its default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, command=self.prog)
