"""Small value types: FrozenMap, selectors, durations, object keys and errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xds.model.errors import ManifestError
from xds.model.frozen import FrozenMap, is_subset
from xds.model.meta import LabelSelector, ObjectKey, SelectorOperator, SelectorRequirement
from xds.model.parse import parse_duration


def test_frozen_map_is_a_hashable_read_only_mapping() -> None:
    a = FrozenMap({"x": "1", "y": "2"})
    b = FrozenMap([("y", "2"), ("x", "1")])
    assert a == b and hash(a) == hash(b)
    assert a == {"x": "1", "y": "2"}
    assert a != FrozenMap({"x": "1"})
    assert a != {"x": "1", "y": "3"}
    assert list(b) == ["y", "x"]  # insertion order kept for iteration
    assert len({a, b}) == 1
    assert a.to_dict() == {"x": "1", "y": "2"}
    with pytest.raises(TypeError):
        a["x"] = "2"  # type: ignore[index]


def test_is_subset() -> None:
    assert is_subset({"app": "a"}, {"app": "a", "version": "v1"})
    assert not is_subset({"app": "a"}, {"app": "b"})
    assert not is_subset({"app": "a"}, {})
    assert is_subset({}, {"anything": "x"})


@pytest.mark.parametrize(
    ("requirement", "labels", "matches"),
    [
        (SelectorRequirement("env", SelectorOperator.IN, ("a", "b")), {"env": "b"}, True),
        (SelectorRequirement("env", SelectorOperator.IN, ("a",)), {"env": "b"}, False),
        (SelectorRequirement("env", SelectorOperator.IN, ("a",)), {}, False),
        (SelectorRequirement("env", SelectorOperator.NOT_IN, ("a",)), {"env": "b"}, True),
        (SelectorRequirement("env", SelectorOperator.NOT_IN, ("a",)), {}, True),
        (SelectorRequirement("env", SelectorOperator.NOT_IN, ("a",)), {"env": "a"}, False),
        (SelectorRequirement("env", SelectorOperator.EXISTS), {"env": ""}, True),
        (SelectorRequirement("env", SelectorOperator.EXISTS), {}, False),
        (SelectorRequirement("env", SelectorOperator.DOES_NOT_EXIST), {}, True),
        (SelectorRequirement("env", SelectorOperator.DOES_NOT_EXIST), {"env": "x"}, False),
    ],
)
def test_selector_requirements(
    requirement: SelectorRequirement, labels: dict[str, str], matches: bool
) -> None:
    assert requirement.matches(labels) is matches


def test_label_selector_combines_labels_and_expressions() -> None:
    selector = LabelSelector(
        FrozenMap({"team": "a"}), (SelectorRequirement("env", SelectorOperator.EXISTS),)
    )
    assert selector.matches({"team": "a", "env": "prod"})
    assert not selector.matches({"team": "a"})
    assert not selector.matches({"team": "b", "env": "prod"})
    assert LabelSelector().is_empty and LabelSelector().matches({})
    assert not selector.is_empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("10s", timedelta(seconds=10)),
        ("1.5s", timedelta(seconds=1.5)),
        ("250ms", timedelta(milliseconds=250)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2m3.5s", timedelta(minutes=2, seconds=3.5)),
        ("100us", timedelta(microseconds=100)),
        ("", None),
        ("10", None),
        ("-1s", None),
        ("1s 2s", None),
        ("s", None),
        ("1d", None),
        ("10 seconds", None),
    ],
)
def test_parse_duration(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


def test_object_key_text_and_order() -> None:
    assert str(ObjectKey("Pod", "ns", "a")) == "Pod/ns/a"
    assert str(ObjectKey("Namespace", "", "ns")) == "Namespace/ns"
    assert sorted([ObjectKey("Pod", "b", "a"), ObjectKey("Pod", "a", "z")])[0].namespace == "a"


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            ManifestError("bad", field="spec.x", kind="Pod", namespace="ns", name="p"),
            "Pod ns/p: spec.x: bad",
        ),
        (ManifestError("bad", kind="Namespace", name="ns"), "Namespace ns: bad"),
        (ManifestError("bad"), "<unknown kind> <unnamed>: bad"),
    ],
)
def test_manifest_error_text(error: ManifestError, text: str) -> None:
    assert str(error) == text
