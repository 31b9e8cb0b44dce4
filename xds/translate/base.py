"""The contract between translators and the pipeline that runs them."""

from __future__ import annotations

from collections.abc import Set
from typing import Protocol

from xds.model.meta import ObjectKey
from xds.resources import Update


class Translator(Protocol):
    """Turns model changes into resource updates; pure apart from its own memo.

    ``changed`` holds the keys of the objects added, updated or deleted since
    the last call; ``None`` asks for everything (start-up, or after a resync).
    ``mesh`` is the read side of the model's MeshStore, already updated.
    """

    def translate(self, mesh: object, changed: Set[ObjectKey] | None) -> list[Update]: ...
