"""FanOutGate: a scope's next commit waits until the previous one is written everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from xds.serving.fanout import FanOutGate
from xds.serving.store import Touched

TYPE = "type.googleapis.com/test.Thing"


class Streams:
    """Streams of one scope: what each has noted, and how often it was woken."""

    def __init__(self, gate: FanOutGate, *names: str) -> None:
        self.noted: dict[str, set[str]] = {name: set() for name in names}
        self.woken: dict[str, int] = dict.fromkeys(names, 0)
        self.watchers = {
            name: gate.watcher("scope", name, self._note(name), self._wake(name)) for name in names
        }

    def _note(self, name: str) -> Callable[[Touched, float], None]:
        def note(change: Touched, origin: float) -> None:
            self.noted[name] |= change[TYPE]

        return note

    def _wake(self, name: str) -> Callable[[], None]:
        def wake() -> None:
            self.woken[name] += 1

        return wake

    def commit(self, *names: str) -> None:
        """As ConfigStore.commit: every watcher, one after the other."""
        for watcher in self.watchers.values():
            watcher({TYPE: frozenset(names)}, 0.0)


async def next_tick() -> None:
    await asyncio.sleep(0)


async def test_a_commit_while_nothing_is_written_wakes_every_stream_at_once() -> None:
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "b")
    streams.commit("x")
    assert streams.woken == {"a": 1, "b": 1}
    await next_tick()
    gate.pushed("a")
    gate.pushed("b")
    streams.commit("y")  # both were done: at once again
    assert streams.woken == {"a": 2, "b": 2}


async def test_commits_wake_streams_once_the_last_one_has_written_the_previous() -> None:
    """Noted at once (a push queued already takes them along), woken later, once."""
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "b")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")  # "b" is still being written to
    streams.commit("y")
    await next_tick()
    streams.commit("z")
    assert streams.noted == {"a": {"x", "y", "z"}, "b": {"x", "y", "z"}}
    assert streams.woken == {"a": 1, "b": 1}
    assert gate.holding("scope") == 2
    gate.pushed("b")  # the fan-out is done
    assert streams.woken == {"a": 2, "b": 2}
    assert gate.holding("scope") == 0


async def test_a_stream_that_never_finishes_holds_the_others_up_for_max_hold_only() -> None:
    now = [0.0]
    gate = FanOutGate(max_hold=0.05, clock=lambda: now[0])
    streams = Streams(gate, "a", "stuck")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")
    streams.commit("y")
    assert streams.woken["a"] == 1
    await asyncio.sleep(0.1)  # the hold's timer
    assert streams.woken["a"] == 2
    await next_tick()
    gate.pushed("a")
    # Writing for longer than max_hold: it no longer counts.
    now[0] = 1.0
    streams.commit("z")
    assert streams.woken["a"] == 3


async def test_a_closed_stream_neither_holds_up_nor_is_woken() -> None:
    gate = FanOutGate(max_hold=10)
    streams = Streams(gate, "a", "gone")
    streams.commit("x")
    await next_tick()
    gate.pushed("a")
    streams.commit("y")
    gate.closed("gone")
    assert streams.woken == {"a": 2, "gone": 1}
