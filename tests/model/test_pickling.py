"""Model objects cross to serving processes pickled (``xds.model.pickling``)."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

from xds.model import core, pickling
from xds.sources.files import load_directory

DEMO = Path(__file__).parents[2] / "xds" / "sources" / "demo"


def test_every_demo_object_survives_a_round_trip() -> None:
    objects, errors = load_directory(DEMO)
    assert objects and not errors
    copies = pickle.loads(pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL))
    assert copies == objects
    assert [type(copy) for copy in copies] == [type(obj) for obj in objects]


def test_the_model_classes_use_the_field_names_looked_up_once() -> None:
    slotted = [
        value
        for value in vars(core).values()
        if isinstance(value, type)
        and value.__module__ == core.__name__
        and dataclasses.is_dataclass(value)
        and "__setstate__" in value.__dict__
    ]
    assert len(slotted) > 5
    for cls in slotted:
        assert cls.__dict__["__setstate__"].__module__ == pickling.__name__, cls


def test_a_one_field_class_pickles_too() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class One:
        value: int

    pickling._install(One)
    copy = One.__new__(One)
    copy.__setstate__(One(7).__getstate__())  # type: ignore[attr-defined]
    assert copy == One(7)
