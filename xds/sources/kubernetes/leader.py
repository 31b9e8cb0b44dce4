"""Leader election on a ``coordination.k8s.io/v1`` Lease: one replica writes.

Every replica serves xDS and the CA; only the holder of the Lease writes to the
cluster (root-cert ConfigMaps, waypoint objects, status, the CA Secret). The
algorithm is client-go's ``leaderelection``:

- the Lease names its holder and a duration; a replica may take it when it has
  no holder, or when its record has not changed for a whole lease duration
  *as measured on our own clock* since we first saw that record (so clock skew
  between replicas never matters, only the rate of time);
- every write is a PUT with the resourceVersion last read, so of two replicas
  that race for an expired Lease exactly one wins (the other gets 409);
- the holder renews every ``retry_period``; if it cannot renew for
  ``renew_deadline`` it stops writing before anyone else may take over
  (``renew_deadline < lease_duration``), so two writers never overlap;
- on a clean shutdown the holder releases the Lease (no holder, duration 1 s),
  and another replica takes over at its next try instead of after a lease
  duration.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_client import Gauge

from xds.sources.kubernetes.api import ApiError, KubeApi
from xds.tasks import cancel_and_wait

log = logging.getLogger("xds.kube")

LEASE_NAME: Final = "istiod-xds-leader"

LEADER = Gauge(
    "xds_kubernetes_leader", "1 while this replica holds the leader Lease and writes to the cluster"
)


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's three durations, in seconds (istiod: 30 / 15 / 7.5 s... we retry at 5 s)."""

    lease_duration: float = 30.0
    renew_deadline: float = 15.0
    retry_period: float = 5.0

    @classmethod
    def scaled(cls, lease_duration: float) -> LeaseTiming:
        """The default proportions for another lease duration (tests use a few seconds)."""
        return cls(lease_duration, lease_duration / 2, lease_duration / 6)

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "need 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period}, {self.renew_deadline}, "
                f"{self.lease_duration}"
            )


def default_identity() -> str:
    """The pod name (unique among replicas) plus a per-process suffix: a restarted
    replica is a new candidate, never mistaken for the holder it replaced."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: Mapping[str, Any]) -> tuple[str, str, str]:
    """What identifies one renewal of a Lease: a change means its holder is alive."""
    spec = lease.get("spec") or {}
    return (
        str(spec.get("holderIdentity") or ""),
        str(spec.get("renewTime") or ""),
        str(spec.get("leaseDurationSeconds") or ""),
    )


class LeaderElection:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        *,
        identity: str | None = None,
        name: str = LEASE_NAME,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity or default_identity()
        self.namespace = namespace
        self.name = name
        self.timing = timing or LeaseTiming()
        self.leading = asyncio.Event()
        """Set while we hold the Lease."""
        self._api = api
        self._clock = clock
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0
        self._failures = 0

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign until cancelled; while leading, run ``lead()`` (cancelled on loss).

        A failing ``lead`` is logged and started again: leadership is not given up,
        and the writes must go on."""
        try:
            while True:
                await self._acquire()
                work = asyncio.create_task(_logged(lead), name="leader-work")
                try:
                    await self._keep()
                finally:
                    self.leading.clear()
                    LEADER.set(0)
                    await cancel_and_wait(work)
                log.warning(
                    "lost the leader Lease; stopped writing to the cluster",
                    extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity},
                )
        finally:
            if self._holds_record():
                await self._release()

    async def _acquire(self) -> None:
        while True:
            if await self._try():
                break
            await asyncio.sleep(self.timing.retry_period)  # the Lease is polled, not watched
        self.leading.set()
        LEADER.set(1)
        log.info(
            "became the leader; writing to the cluster",
            extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity},
        )

    async def _keep(self) -> None:
        """Renew until a renewal has not succeeded for ``renew_deadline``."""
        last_renewal = self._clock()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            # A slow API server is not a lost Lease: a renewal may take until the
            # deadline (as client-go's), only then is leadership given up.
            left = self.timing.renew_deadline - (self._clock() - last_renewal)
            try:
                async with asyncio.timeout(max(left, self.timing.retry_period)):
                    renewed = await self._try()
            except TimeoutError:
                renewed = False
            if renewed:
                last_renewal = self._clock()
            elif (
                self._observed is not None
                and self._observed[0]
                and self._observed[0] != self.identity
            ):
                return  # somebody else holds it now
            elif self._clock() - last_renewal >= self.timing.renew_deadline:
                return

    def _holds_record(self) -> bool:
        return self._observed is not None and self._observed[0] == self.identity

    async def _try(self) -> bool:
        """One tryAcquireOrRenew; True when we hold the Lease afterwards."""
        try:
            return await self._try_once()
        except ApiError as error:
            self._failures += 1
            level = logging.WARNING if self._failures == 1 or error.forbidden else logging.DEBUG
            log.log(
                level,
                "cannot read or write the leader Lease",
                extra={"lease": f"{self.namespace}/{self.name}", "reason": str(error)},
            )
            return False

    async def _try_once(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self._api.get(f"{self._path}/{self.name}")
        except ApiError as error:
            if not error.not_found:
                raise
            created = await self._create(now)
            self._failures = 0
            return created
        record = _record(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or 0)
        if holder and holder != self.identity and self._clock() - self._observed_at < duration:
            self._failures = 0
            return False
        new_spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.lease_duration + 0.999),
            "renewTime": _micro_time(now),
            "acquireTime": spec.get("acquireTime") if holder == self.identity else _micro_time(now),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0)
            + (0 if holder == self.identity else 1),
        }
        body = {**lease, "spec": {**spec, **new_spec}}
        try:
            updated = await self._api.replace(f"{self._path}/{self.name}", body)
        except ApiError as error:
            if error.status == 409:  # another replica wrote first
                return False
            raise
        self._observed, self._observed_at = _record(updated), self._clock()
        self._failures = 0
        return True

    async def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.timing.lease_duration + 0.999),
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self._api.create(self._path, body)
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        self._observed, self._observed_at = _record(created), self._clock()
        return True

    async def _release(self) -> None:
        """Hand the Lease back so a successor need not wait out its duration."""
        try:
            async with asyncio.timeout(2.0):
                lease = await self._api.get(f"{self._path}/{self.name}")
                spec = lease.get("spec") or {}
                if spec.get("holderIdentity") != self.identity:
                    return
                released = {
                    **spec,
                    "holderIdentity": "",
                    "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(datetime.now(UTC)),
                }
                await self._api.replace(f"{self._path}/{self.name}", {**lease, "spec": released})
            log.info("released the leader Lease", extra={"lease": f"{self.namespace}/{self.name}"})
        except (ApiError, TimeoutError) as error:
            log.warning(
                "could not release the leader Lease; another replica takes over when it expires",
                extra={"reason": str(error)},
            )


async def _logged(lead: Callable[[], Awaitable[None]], restart_after: float = 5.0) -> None:
    while True:
        try:
            await lead()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("leader work failed; starting it again", extra={"delay": restart_after})
        await asyncio.sleep(restart_after)
