"""The contract between a config source and the rest of the process.

A source owns the writes to a ``MeshStore``: it turns what it watches (a
directory of manifests, a Kubernetes API server) into model objects, applies
them, and reports each real change to ``on_change``. The app only needs
``run`` (a task it owns and cancels) and ``synced`` (ready gating).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from xds.model.mesh import ChangeSet

OnChange = Callable[[ChangeSet], None]
"""Called on the event loop after every ``MeshStore.apply`` that changed something."""


class Source(Protocol):
    """A producer of mesh objects.

    ``synced`` is set once the initial state has been applied to the store
    (after the first ``on_change`` call, if there was anything to apply), so
    the first full translation sees a complete mesh. ``run`` keeps the store
    up to date until it is cancelled; an exception from it means the source
    cannot continue (for example, the configured directory does not exist).
    """

    @property
    def synced(self) -> asyncio.Event: ...

    async def run(self) -> None: ...
