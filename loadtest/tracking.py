"""Matching what proxies received to the changes that were made (inside a client process).

The parent applies a change and then tells every client process when it did
(an ``Expectation``). Proxies report the tracked names they receive; a
change is delivered to a proxy by the first report of its name at or after
the moment it was applied (and of the right sort: an update, or a removal).
Reports can arrive before the expectation does, so unmatched ones are kept
until it comes.

A change is expected from every proxy of its audience that was synced when
it was applied. A proxy that re-syncs (reconnects) before delivering is
taken out of that change's count and reported as ``resynced``: its new full
state may or may not contain the change, and the sim does not look inside
full states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from loadtest.churn import Expect
from loadtest.proxies import ProxyState


@dataclass(frozen=True)
class Expectation:
    change_id: int
    key: str
    audience: str
    expect: Expect
    applied_at: float  # time.monotonic() (system-wide on Linux, so comparable across processes)


@dataclass
class Delivery:
    """One change as the proxies of one (or, merged, every) client process saw it."""

    change_id: int
    affected: int = 0
    latencies: list[float] = field(default_factory=list)
    """Seconds from the change to each proxy's ACK of it."""
    resynced: int = 0

    @property
    def missing(self) -> int:
        """Proxies that should have ACKed the change and did not."""
        return self.affected - len(self.latencies) - self.resynced

    def merge(self, other: Delivery) -> None:
        self.affected += other.affected
        self.latencies.extend(other.latencies)
        self.resynced += other.resynced


@dataclass
class _Pending:
    expectation: Expectation
    waiting: set[int]
    delivery: Delivery

    def offer(self, index: int, at: float, removed: bool) -> bool:
        wanted = self.expectation
        if index not in self.waiting or at < wanted.applied_at:
            return False
        if wanted.expect is not Expect.ANY and removed != (wanted.expect is Expect.REMOVE):
            return False
        self.waiting.discard(index)
        self.delivery.latencies.append(at - wanted.applied_at)
        return True


class Tracker:
    """Implements the ``Observer`` side of the sims for the changes of one phase."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        """Names the ztunnel sims report; shared with them (mutated in place)."""
        self._unmatched: dict[str, list[tuple[int, float, bool]]] = {}
        self._by_key: dict[str, list[_Pending]] = {}
        self._changes: dict[int, _Pending] = {}

    def track(self, keys: Iterable[str]) -> None:
        self.keys.update(keys)

    def observed(self, state: ProxyState, key: str, at: float, removed: bool) -> None:
        for pending in self._by_key.get(key, ()):
            if pending.offer(state.index, at, removed):
                return
        self._unmatched.setdefault(key, []).append((state.index, at, removed))

    def resynced(self, state: ProxyState, at: float) -> None:
        for pending in self._changes.values():
            if state.index in pending.waiting and pending.expectation.applied_at < at:
                pending.waiting.discard(state.index)
                pending.delivery.resynced += 1

    def expect(self, expectation: Expectation, proxies: Iterable[ProxyState]) -> None:
        affected = {
            p.index
            for p in proxies
            if p.spec.receives(expectation.audience)
            and p.synced_at is not None
            and p.synced_at <= expectation.applied_at
        }
        pending = _Pending(
            expectation, affected, Delivery(expectation.change_id, affected=len(affected))
        )
        self._changes[expectation.change_id] = pending
        self._by_key.setdefault(expectation.key, []).append(pending)
        early = self._unmatched.pop(expectation.key, [])
        kept = [event for event in early if not pending.offer(*event)]
        if kept:
            self._unmatched[expectation.key] = kept

    def outstanding(self) -> int:
        """Changes some proxy of this process has not ACKed yet."""
        return sum(1 for p in self._changes.values() if p.waiting)

    def deliveries(self) -> list[Delivery]:
        return [p.delivery for p in self._changes.values()]

    def clear(self) -> None:
        self.keys.clear()
        self._unmatched.clear()
        self._by_key.clear()
        self._changes.clear()
