"""The error raised for a manifest that cannot be turned into a model object."""

from __future__ import annotations


class ManifestError(ValueError):
    """An object in a manifest is invalid.

    It names the object (``kind``, ``namespace``, ``name``, each ``None`` when
    the manifest did not say) and the offending ``field`` as a path such as
    ``spec.ports[1].port``, so that a user can find the line to fix.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        kind: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        self.message = message
        self.field = field
        self.kind = kind
        self.namespace = namespace
        self.name = name
        super().__init__(str(self))

    @property
    def object_name(self) -> str:
        """``Kind ns/name`` (or ``Kind name`` when cluster-scoped); placeholders when unknown."""
        name = self.name or "<unnamed>"
        if self.namespace:
            name = f"{self.namespace}/{name}"
        return f"{self.kind or '<unknown kind>'} {name}"

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.object_name}: {where}{self.message}"
