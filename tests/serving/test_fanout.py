"""FanOutGate: a scope's next commit waits until the previous one is written everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from xds.serving.fanout import FanOutGate
from xds.serving.store import Touched

TYPE = "type.googleapis.com/test.Thing"


class Streams:
    """Streams of one scope, recording what reaches each."""

    def __init__(self, gate: FanOutGate, *names: str) -> None:
        self.got: dict[str, list[set[str]]] = {name: [] for name in names}
        self.watchers = {name: gate.watcher("scope", name, self._deliver(name)) for name in names}

    def _deliver(self, name: str) -> Callable[[Touched, float], None]:
        def deliver(change: Touched, origin: float) -> None:
            self.got[name].append(set(change[TYPE]))

        return deliver

    def commit(self, *names: str) -> None:
        """As ConfigStore.commit: every watcher, one after the other."""
        for watcher in self.watchers.values():
            watcher({TYPE: frozenset(names)}, 0.0)


async def next_tick() -> None:
    await asyncio.sleep(0)


async def test_a_commit_while_nothing_is_written_reaches_every_stream_at_once() -> None:
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "b")
    streams.commit("x")
    assert streams.got == {"a": [{"x"}], "b": [{"x"}]}
    await next_tick()
    gate.pushed("a")
    gate.pushed("b")
    streams.commit("y")  # both were done: at once again
    assert streams.got == {"a": [{"x"}, {"y"}], "b": [{"x"}, {"y"}]}


async def test_commits_wait_until_the_last_stream_has_written_the_previous_one() -> None:
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "b")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")  # "b" is still being written to
    streams.commit("y")
    await next_tick()
    streams.commit("z")
    assert streams.got == {"a": [{"x"}], "b": [{"x"}]}
    assert gate.holding("scope") == 2
    gate.pushed("b")  # the fan-out is done: what came meanwhile goes out, in order
    assert streams.got == {"a": [{"x"}, {"y"}, {"z"}], "b": [{"x"}, {"y"}, {"z"}]}
    assert gate.holding("scope") == 0


async def test_a_stream_that_never_finishes_holds_the_others_up_for_max_hold_only() -> None:
    now = [0.0]
    gate = FanOutGate(max_hold=0.05, clock=lambda: now[0])
    streams = Streams(gate, "a", "stuck")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")
    streams.commit("y")
    assert streams.got["a"] == [{"x"}]
    await asyncio.sleep(0.1)  # the hold's timer
    assert streams.got["a"] == [{"x"}, {"y"}]
    await next_tick()
    gate.pushed("a")
    # Writing for longer than max_hold: it no longer counts.
    now[0] = 1.0
    streams.commit("z")
    assert streams.got["a"] == [{"x"}, {"y"}, {"z"}]


async def test_a_closed_stream_neither_holds_up_nor_gets_anything() -> None:
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "gone")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")
    streams.commit("y")
    gate.closed("gone")
    assert streams.got == {"a": [{"x"}, {"y"}], "gone": [{"x"}]}
