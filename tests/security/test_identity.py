"""SPIFFE identities: parsing is strict, printing is canonical."""

from __future__ import annotations

import pytest

from xds.security.identity import Identity, InvalidIdentity


def test_round_trip() -> None:
    identity = Identity.parse("spiffe://cluster.local/ns/istio-system/sa/ztunnel")
    assert identity == Identity("cluster.local", "istio-system", "ztunnel")
    assert str(identity) == identity.uri == "spiffe://cluster.local/ns/istio-system/sa/ztunnel"
    assert identity.account == "istio-system/ztunnel"
    assert Identity.from_account("istio-system/ztunnel") == identity


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://cluster.local/ns/a/sa/b", "not a spiffe:// URI"),
        ("spiffe://cluster.local/ns/a/sa/b/extra", "not of the form"),
        ("spiffe://cluster.local/sa/b/ns/a", "not of the form"),
        ("spiffe://Cluster.Local/ns/a/sa/b", "invalid trust domain"),
        ("spiffe://cluster.local/ns/a_b/sa/b", "invalid namespace"),
        ("spiffe://cluster.local/ns/a/sa/", "invalid service account"),
        ("spiffe://cluster.local/ns/a/sa/b\n", "invalid service account"),
        ("spiffe://cluster.local/ns/" + "a" * 64 + "/sa/b", "invalid namespace"),
    ],
)
def test_rejects(uri: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        Identity.parse(uri)


def test_error_messages_are_bounded() -> None:
    with pytest.raises(InvalidIdentity) as info:
        Identity.parse("spiffe://cluster.local/ns/a/sa/" + "x" * 10_000)
    assert len(str(info.value)) < 300


def test_service_accounts_may_contain_dots() -> None:
    assert Identity.from_account("default/build.bot").service_account == "build.bot"
    with pytest.raises(InvalidIdentity):
        Identity.from_account("default/a/b")
