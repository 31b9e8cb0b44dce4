"""The contract between translators and the pipeline that runs them."""

from __future__ import annotations

from typing import Protocol

from xds.model.mesh import ChangeSet, Mesh
from xds.resources import Update


class Translator(Protocol):
    """Turns model changes into resource updates; pure apart from its own memo.

    ``changes`` is the net change since the last call (debounced batches are
    merged with ``ChangeSet.merge``; ``previous`` holds the old version of
    every updated or deleted object); ``None`` asks for everything (start-up,
    or recovery after a failed rebuild). ``mesh`` is already updated.
    """

    def translate(self, mesh: Mesh, changes: ChangeSet | None) -> list[Update]: ...
