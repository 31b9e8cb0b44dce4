"""Config changes and when to make them: single changes and sustained churn.

Each ``Change`` knows the object to write (or delete) and how the change
shows up on the wire: the resource name (``key``), its type, which proxies
must receive it (``audience``: every ztunnel, or one waypoint's scope) and
whether it arrives as an update or a removal. Simulated proxies record when
they receive and ACK that name; that is how convergence is measured.

A plan never touches the same object twice, so "the first response naming
``key`` after the change was written" is that change and not an earlier one.
The soak is the exception (``recycle``): it runs for as long as asked, so
changed objects go back to the end of their pool and are changed again, and
the mesh keeps its size (as many pods added as removed).
Pod relabels change the ``version`` label, which ztunnel sees as the
workload's canonical revision; service edits add or drop a port; policy
edits move an AuthorizationPolicy rule to another port; route edits shift
HTTPRoute weight between two backends.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address

from loadtest.meshfiles import Manifest, ObjectRef, ref_of
from xds import type_urls
from xds.resources import ZTUNNEL_SCOPE, waypoint_scope

ZTUNNEL = ZTUNNEL_SCOPE
NOBODY = ""
"""The audience of a change no simulated proxy subscribes to (a Service edit, when every
ztunnel is on-demand and looks nothing up)."""


def node_audience(node: str) -> str:
    """The ztunnels of one node: what an on-demand ztunnel is sent of the pods' changes."""
    return f"{ZTUNNEL}@{node}"


def for_ztunnels(audience: str) -> bool:
    return audience in (ZTUNNEL, NOBODY) or audience.startswith(f"{ZTUNNEL}@")


_ADDED_POD_NETWORK = int(IPv4Address("10.192.0.0"))


class Expect(Enum):
    UPSERT = "upsert"
    REMOVE = "remove"
    ANY = "any"
    """Any response of the waypoint's listener/route/cluster types (names unknown in advance)."""


@dataclass(frozen=True)
class Change:
    id: int
    kind: str  # pod-add, pod-remove, pod-relabel, service-edit, policy-edit, route-edit
    key: str
    type_url: str
    audience: str
    expect: Expect
    ref: ObjectRef
    manifest: Manifest | None  # None: delete ``ref``

    @property
    def pod(self) -> bool:
        return self.kind.startswith("pod-")


@dataclass(frozen=True)
class Scheduled:
    offset: float  # seconds after the phase starts
    change: Change


@dataclass(frozen=True)
class ChurnSpec:
    pods_per_second: float = 40.0
    seconds: float = 30.0
    service_edits_per_second: float = 1.0
    policy_edits_per_second: float = 1.0
    route_edits_per_second: float = 0.0
    pod_mix: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Relative weights of pod adds, removals and relabels."""


def workload_name(cluster_id: str, namespace: str, pod: str) -> str:
    return f"{cluster_id}//Pod/{namespace}/{pod}"


def service_name(namespace: str, service: str) -> str:
    return f"{namespace}/{service}.{namespace}.svc.cluster.local"


class Planner:
    """Draws changes from a mesh, each object at most once, deterministically by seed."""

    def __init__(
        self,
        documents: list[Manifest],
        *,
        cluster_id: str = "Kubernetes",
        seed: int = 7,
        on_demand: bool = False,
        recycle: bool = False,
    ) -> None:
        """``on_demand``: the ztunnels subscribe by name (``XDS_ON_DEMAND``), so a pod's
        change is for the ztunnels of its node only, and a Service's for nobody.
        ``recycle``: a changed object (and an added pod) goes back to the far end of its
        pool, so changes never run out; removed pods are gone for good."""
        self._cluster_id = cluster_id
        self._recycle = recycle
        self._on_demand = on_demand
        self._rng = random.Random(seed)
        self._ids = iter(range(1, 1 << 31))
        by_kind: dict[str, list[Manifest]] = {}
        for document in documents:
            by_kind.setdefault(document["kind"], []).append(document)
        waypointed = {d["metadata"]["namespace"] for d in by_kind.get("Gateway", [])}
        pods = [
            p
            for p in by_kind.get("Pod", [])
            if "gateway.networking.k8s.io/gateway-name" not in p["metadata"]["labels"]
        ]
        self._pods = self._shuffled(pods)
        self._templates = pods
        self._services = self._shuffled(
            [s for s in by_kind.get("Service", []) if s["metadata"]["name"] != "waypoint"]
        )
        self._policies = self._shuffled(by_kind.get("AuthorizationPolicy", []))
        self._routes = self._shuffled(
            [r for r in by_kind.get("HTTPRoute", []) if r["metadata"]["namespace"] in waypointed]
        )
        self._services_by_namespace: dict[str, list[str]] = {}
        for service in by_kind.get("Service", []):
            meta = service["metadata"]
            if meta["name"] != "waypoint":
                self._services_by_namespace.setdefault(meta["namespace"], []).append(meta["name"])
        self._added = 0

    def _shuffled(self, items: list[Manifest]) -> list[Manifest]:
        items = list(items)
        self._rng.shuffle(items)
        return items

    def _returned(self, pool: list[Manifest], manifest: Manifest) -> Manifest:
        """With ``recycle``, the object's new state waits at the far end of its pool."""
        if self._recycle:
            pool.insert(0, manifest)
        return manifest

    def available(self, kind: str) -> bool:
        pools = {
            "pod-remove": self._pods,
            "pod-relabel": self._pods,
            "pod-add": self._templates,
            "service-edit": self._services,
            "policy-edit": self._policies,
            "route-edit": self._routes,
        }
        return bool(pools[kind])

    # -- one change of each kind ------------------------------------------------------

    def pod_add(self) -> Change:
        template = self._rng.choice(self._templates)
        pod = copy.deepcopy(template)
        meta = pod["metadata"]
        self._added += 1
        meta["name"] = f"{meta['generateName']}lt{self._added:05d}"
        meta["uid"] = f"uid-{meta['namespace']}-{meta['name']}"
        ip = str(IPv4Address(_ADDED_POD_NETWORK + self._added))
        pod["status"]["podIP"] = ip
        pod["status"]["podIPs"] = [{"ip": ip}]
        return self._pod_change("pod-add", self._returned(self._pods, pod), Expect.UPSERT)

    def pod_remove(self) -> Change:
        pod = self._pods.pop()
        return self._pod_change("pod-remove", pod, Expect.REMOVE, delete=True)

    def pod_relabel(self) -> Change:
        pod = copy.deepcopy(self._pods.pop())
        labels = pod["metadata"]["labels"]
        labels["version"] = "v2" if labels.get("version") != "v2" else "v3"
        return self._pod_change("pod-relabel", self._returned(self._pods, pod), Expect.UPSERT)

    def service_edit(self) -> Change:
        service = copy.deepcopy(self._services.pop())
        ports = service["spec"]["ports"]
        if any(p["name"] == "grpc" for p in ports):
            service["spec"]["ports"] = [p for p in ports if p["name"] != "grpc"]
        else:
            ports.append({"name": "grpc", "port": 9090, "targetPort": 9090, "protocol": "TCP"})
        meta = service["metadata"]
        return self._change(
            "service-edit",
            service_name(meta["namespace"], meta["name"]),
            type_urls.ADDRESS,
            NOBODY if self._on_demand else ZTUNNEL,
            Expect.UPSERT,
            self._returned(self._services, service),
        )

    def policy_edit(self) -> Change:
        policy = copy.deepcopy(self._policies.pop())
        operation = policy["spec"]["rules"][0]["to"][0]["operation"]
        operation["ports"] = ["8081"] if operation.get("ports") != ["8081"] else ["8080"]
        meta = policy["metadata"]
        return self._change(
            "policy-edit",
            f"{meta['namespace']}/{meta['name']}",
            type_urls.AUTHORIZATION,
            ZTUNNEL,
            Expect.UPSERT,
            self._returned(self._policies, policy),
        )

    def route_edit(self) -> Change:
        route = copy.deepcopy(self._routes.pop())
        meta = route["metadata"]
        rule = route["spec"]["rules"][0]
        own = rule["backendRefs"][0]["name"]
        others = [s for s in self._services_by_namespace.get(meta["namespace"], []) if s != own]
        if len(rule["backendRefs"]) == 1 and others:
            rule["backendRefs"] = [
                {"name": own, "port": 80, "weight": 90},
                {"name": others[0], "port": 80, "weight": 10},
            ]
        else:
            rule["backendRefs"] = [{"name": own, "port": 80, "weight": 100}]
        scope = waypoint_scope(meta["namespace"], "waypoint")
        return self._change("route-edit", scope, type_urls.LISTENER, scope, Expect.ANY, route)

    # -- plans -------------------------------------------------------------------------

    def singles(self, count: int) -> list[Change]:
        """``count`` isolated pod changes: relabel, add, remove, in turn."""
        makers: list[Callable[[], Change]] = [self.pod_relabel, self.pod_add, self.pod_remove]
        return [makers[i % len(makers)]() for i in range(count)]

    def churn(self, spec: ChurnSpec) -> list[Scheduled]:
        """Changes at the spec's rates, evenly spaced within each stream, merged by time."""
        scheduled: list[Scheduled] = []
        weights = spec.pod_mix
        pod_makers: list[Callable[[], Change]] = [self.pod_add, self.pod_remove, self.pod_relabel]
        pod_kinds = ["pod-add", "pod-remove", "pod-relabel"]
        for offset in _ticks(spec.pods_per_second, spec.seconds):
            choices = [
                i for i, kind in enumerate(pod_kinds) if weights[i] > 0 and self.available(kind)
            ]
            if not choices:
                break
            index = self._rng.choices(choices, [weights[i] for i in choices])[0]
            scheduled.append(Scheduled(offset, pod_makers[index]()))
        streams: list[tuple[str, float, Callable[[], Change]]] = [
            ("service-edit", spec.service_edits_per_second, self.service_edit),
            ("policy-edit", spec.policy_edits_per_second, self.policy_edit),
            ("route-edit", spec.route_edits_per_second, self.route_edit),
        ]
        for kind, rate, maker in streams:
            for offset in _ticks(rate, spec.seconds):
                if not self.available(kind):
                    break
                scheduled.append(Scheduled(offset, maker()))
        scheduled.sort(key=lambda s: s.offset)
        return scheduled

    # -- internals ---------------------------------------------------------------------

    def _pod_change(
        self, kind: str, pod: Manifest, expect: Expect, *, delete: bool = False
    ) -> Change:
        meta = pod["metadata"]
        key = workload_name(self._cluster_id, meta["namespace"], meta["name"])
        audience = (
            node_audience(str(pod["spec"].get("nodeName") or "")) if self._on_demand else ZTUNNEL
        )
        return self._change(
            kind, key, type_urls.ADDRESS, audience, expect, None if delete else pod, ref_of(pod)
        )

    def _change(
        self,
        kind: str,
        key: str,
        type_url: str,
        audience: str,
        expect: Expect,
        manifest: Manifest | None,
        ref: ObjectRef | None = None,
    ) -> Change:
        if ref is None:
            assert manifest is not None
            ref = ref_of(manifest)
        return Change(next(self._ids), kind, key, type_url, audience, expect, ref, manifest)


def _ticks(rate: float, seconds: float) -> Iterator[float]:
    if rate <= 0:
        return
    count = int(rate * seconds)
    for index in range(count):
        yield index / rate
