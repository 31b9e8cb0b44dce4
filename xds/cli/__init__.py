"""The ``xds`` command, one package for every subcommand.

``main`` parses and dispatches (each subcommand sets ``run``); ``common`` holds the
parser, the help format and the error convention: a usage error is one line and
exit code 2, a failure raises ``CommandError`` and is one line ``xds <command>:
<reason>`` with exit code 1. ``serve``/``render``/``version`` live in ``main``,
``ca``/``token`` in ``ca``, ``bootstrap`` in ``bootstrap``, ``client`` in ``client``.
"""

from xds.cli.main import main

__all__ = ["main"]
