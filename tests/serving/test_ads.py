"""A stream's pending changes between the store's commits and its next push."""

from __future__ import annotations

import asyncio

import pytest

from xds.serving.ads import Binding, Connection, Signal
from xds.serving.delta import DeltaSession
from xds.serving.node import parse_node_id
from xds.serving.session import allow_all
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION

NODE = "ztunnel~10.0.0.1~ztunnel-a.istio-system~istio-system.svc.cluster.local"


def connection() -> Connection:
    session = DeltaSession(ConfigStore().view("s"))
    return Connection(parse_node_id(NODE), None, Binding("s", allow_all), session, "peer", True)


async def test_one_commit_is_pushed_as_the_store_published_it() -> None:
    conn = connection()
    change = {ADDRESS: frozenset({"a", "b"})}
    conn.touched(change, origin=5.0)
    assert await conn.next_event() is Signal.PUSH
    pending, origin = conn.take_pending()
    assert pending is change  # shared by every stream, not copied per stream
    assert origin == 5.0
    assert conn.take_pending() == ({}, None)


async def test_commits_before_a_push_merge_into_one_with_the_oldest_origin() -> None:
    conn = connection()
    conn.touched({ADDRESS: frozenset({"a"})}, origin=7.0)
    conn.touched({ADDRESS: frozenset({"b"}), AUTHORIZATION: frozenset({"p"})}, origin=6.0)
    conn.touched({ADDRESS: frozenset({"a", "c"})}, origin=8.0)
    assert await conn.next_event() is Signal.PUSH
    with pytest.raises(TimeoutError):  # one wake-up for all three
        await asyncio.wait_for(conn.next_event(), 0.01)
    pending, origin = conn.take_pending()
    assert {t: set(n) for t, n in pending.items()} == {
        ADDRESS: {"a", "b", "c"},
        AUTHORIZATION: {"p"},
    }
    assert origin == 6.0
