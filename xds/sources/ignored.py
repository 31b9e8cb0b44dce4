"""Telling the user, once, which fields of an object have no effect here."""

from __future__ import annotations

import logging

from xds.model.meta import ObjectKey


class IgnoredFields:
    """Warns about the spec fields of an object that the model does not read: once per
    object, and again only when that list changes (sources re-parse an object on every
    edit or watch event; the warning must not repeat with each)."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._told: dict[ObjectKey, tuple[str, ...]] = {}

    def note(self, key: ObjectKey, fields: tuple[str, ...]) -> None:
        if not fields:
            self._told.pop(key, None)
            return
        if self._told.get(key) == fields:
            return
        self._told[key] = fields
        self._log.warning(
            "fields not supported by this control plane are ignored",
            extra={
                "object_kind": key.kind,
                "object_namespace": key.namespace,
                "object_name": key.name,
                "fields": ", ".join(fields),
            },
        )

    def forget(self, key: ObjectKey) -> None:
        self._told.pop(key, None)
