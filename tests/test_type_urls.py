"""Push order of resource types (make-before-break)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, ENDPOINT, LISTENER, ROUTE, in_push_order

UNKNOWN = "type.googleapis.com/example.Unknown"
OTHER = "type.googleapis.com/example.Another"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], []),
        ([LISTENER], [LISTENER]),
        ({ADDRESS: frozenset({"a"})}, [ADDRESS]),  # a store change, as pushes see it
        ([LISTENER, ROUTE, ENDPOINT, CLUSTER], [CLUSTER, ENDPOINT, LISTENER, ROUTE]),
        ({AUTHORIZATION: (), ADDRESS: ()}, [ADDRESS, AUTHORIZATION]),
        ([UNKNOWN, OTHER, CLUSTER], [CLUSTER, OTHER, UNKNOWN]),  # unknown last, by name
        (iter([LISTENER, CLUSTER]), [CLUSTER, LISTENER]),  # any iterable
        (iter([UNKNOWN]), [UNKNOWN]),
    ],
)
def test_in_push_order(given: Iterable[str], expected: list[str]) -> None:
    assert in_push_order(given) == expected
