"""Named presets: the shape of the mesh, the proxies, the changes, and the targets that apply.

Targets come from the issue and from performance.md section 8.2 (T1-T12); a
figure gets one only where the preset is the situation the target describes
(e.g. "one pod change, 1,000 ztunnels, p99 <= 250 ms" applies to
``ambient-1k``, not to ``smoke``'s two dozen proxies).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.churn import ChurnSpec
from loadtest.meshgen import MeshSpec
from loadtest.soak import SoakSpec

FLOOR_RATIO = 1.3
"""Our convergence may take at most this multiple of the bare gRPC floor's."""


@dataclass(frozen=True)
class CsrLoad:
    requests: int = 4000
    """Calls of the storm (closed loop)."""
    connections: int = 64
    concurrency: int = 64
    """Calls in flight per client process during the storm."""
    open_rate: float = 500.0
    open_seconds: float = 10.0
    distinct_csrs: int = 64
    account: str = "ns-0/svc-0"


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    mesh: MeshSpec
    ztunnels: int
    waypoints: int = 0
    sotw_waypoints: int = 0
    """How many of the waypoints use state-of-the-world ADS (the rest Delta)."""
    tls: bool = False
    on_demand: bool = False
    """ztunnels in on-demand mode (``XDS_ON_DEMAND=true``) instead of wildcard."""
    routes: int = 0
    singles: int = 0
    """Isolated pod changes (relabel, add, remove in turn), one at a time."""
    route_singles: int = 0
    """Isolated HTTPRoute edits (measured only if the server serves waypoint config)."""
    churn: ChurnSpec | None = None
    soak: SoakSpec | None = None
    csr: CsrLoad | None = None
    floor: bool = True
    idle_seconds: float = 3.0
    connect_rate: float = 1000.0
    poll_interval: float = 0.1
    """The server's default (xds serve --poll-interval)."""
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    pods_per_file: int = 25
    sync_timeout: float = 120.0
    settle_seconds: float = 20.0
    single_gap: float = 0.3
    server_args: tuple[str, ...] = ()
    """More ``xds serve`` arguments the preset needs (before ``--server-arg``'s)."""
    targets: dict[str, float] = field(default_factory=dict)

    def target(self, metric: str) -> float | None:
        return self.targets.get(metric)


_SOAK_TARGETS = {
    "soak_rss_growth": 5.0,
    "soak_divergent_proxies": 0,
    "soak_unsynced_proxies": 0,
    "soak_csr_errors": 0,
    "nacks": 0,
}


def _soak(name: str, summary: str, mesh: MeshSpec, ztunnels: int, spec: SoakSpec) -> Scenario:
    return Scenario(
        name=name,
        summary=summary,
        mesh=mesh,
        ztunnels=ztunnels,
        waypoints=mesh.waypoints,
        sotw_waypoints=mesh.waypoints // 2,
        tls=True,
        soak=spec,
        floor=False,
        idle_seconds=1,
        connect_rate=200,
        sync_timeout=60,
        # The server also ends connections by age: restarts from both sides.
        server_args=("--max-connection-age", str(spec.seconds / 4)),
        targets=_SOAK_TARGETS,
    )


_MESH_10K = MeshSpec(
    pods=10_000,
    services=1_000,
    namespaces=40,
    waypoints=40,
    nodes=1_000,
    authorization_policies=200,
)

PRESETS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="smoke",
            summary="two dozen ztunnels and two waypoints over TLS, a few changes, churn and CSRs",
            mesh=MeshSpec(
                pods=200,
                services=20,
                namespaces=4,
                waypoints=2,
                nodes=24,
                authorization_policies=10,
            ),
            ztunnels=24,
            waypoints=2,
            sotw_waypoints=1,
            tls=True,
            routes=4,
            singles=3,
            route_singles=1,
            churn=ChurnSpec(
                pods_per_second=10,
                seconds=1.5,
                service_edits_per_second=2,
                policy_edits_per_second=2,
                route_edits_per_second=0,
            ),
            csr=CsrLoad(
                requests=60,
                connections=4,
                concurrency=4,
                open_rate=20,
                open_seconds=0.5,
                distinct_csrs=4,
            ),
            idle_seconds=0.3,
            sync_timeout=30,
            settle_seconds=10,
            single_gap=0.1,
            targets={"changes_not_converged": 0, "nacks": 0, "stream_errors": 0},
        ),
        Scenario(
            name="ambient-1k",
            summary="1,000 ztunnels and 40 waypoints on a 10k-pod / 1k-service mesh; one pod "
            "change at a time (T2, T7, T11)",
            mesh=_MESH_10K,
            ztunnels=1_000,
            waypoints=40,
            singles=12,
            idle_seconds=5,
            targets={
                "single_change_p99": 250,
                "single_change_floor_ratio": FLOOR_RATIO,
                "server_cpu_per_change": 0.13,  # istiod's best on this machine (issue 14)
                "server_idle_cores": 0.015,  # istiod's, 1,000 idle streams (issue 14)
                "server_startup": 3.0,
                "changes_not_converged": 0,
                "nacks": 0,
                "stream_errors": 0,
            },
        ),
        Scenario(
            name="ambient-churn",
            summary="1,000 ztunnels on a 10k-pod mesh under sustained churn: 40 pods/s plus a "
            "service and a policy edit per second (T9)",
            mesh=_MESH_10K,
            ztunnels=1_000,
            waypoints=40,
            churn=ChurnSpec(
                pods_per_second=40,
                seconds=30,
                service_edits_per_second=1,
                policy_edits_per_second=1,
            ),
            idle_seconds=2,
            targets={
                "churn_p99": 1000,
                "churn_floor_ratio": FLOOR_RATIO,
                "churn_pod_rate": 40,
                "changes_not_converged": 0,
                "nacks": 0,
                "stream_errors": 0,
            },
        ),
        Scenario(
            name="waypoint-routes",
            summary="HTTPRoute edits reaching 20 waypoints (half Delta, half SotW) next to 100 "
            "ztunnels; limited to what the server serves waypoints",
            mesh=MeshSpec(
                pods=2_000,
                services=200,
                namespaces=20,
                waypoints=20,
                nodes=100,
                authorization_policies=40,
            ),
            ztunnels=100,
            waypoints=20,
            sotw_waypoints=10,
            routes=200,
            singles=3,
            route_singles=10,
            churn=ChurnSpec(
                pods_per_second=5,
                seconds=10,
                service_edits_per_second=0,
                policy_edits_per_second=0,
                route_edits_per_second=2,
            ),
            idle_seconds=1,
            targets={
                "route_change_p99": 250,
                "changes_not_converged": 0,
                "nacks": 0,
                "stream_errors": 0,
            },
        ),
        Scenario(
            name="connect-storm",
            summary="500 ztunnels connecting at once to a 10k-pod mesh, until all are synced (T6)",
            mesh=_MESH_10K,
            ztunnels=500,
            connect_rate=1_000,
            idle_seconds=2,
            targets={
                "connect_all_synced": 5.0,
                "server_startup": 3.0,
                "nacks": 0,
                "stream_errors": 0,
            },
        ),
        Scenario(
            name="ca-storm",
            summary="CreateCertificate storm over TLS next to 100 connected ztunnels (T12)",
            mesh=MeshSpec(
                pods=1_000,
                services=100,
                namespaces=10,
                waypoints=0,
                nodes=100,
                authorization_policies=20,
            ),
            ztunnels=100,
            tls=True,
            floor=False,
            idle_seconds=1,
            csr=CsrLoad(
                requests=4_000, connections=64, concurrency=64, open_rate=500, open_seconds=10
            ),
            targets={"csr_rate": 2_000, "csr_open_p99": 50, "csr_errors": 0},
        ),
        _soak(
            "soak",
            "30 minutes of churn, stream restarts and CSRs against 200 ztunnels and 4 "
            "waypoints; memory growth after warm-up, then every proxy's state against "
            "xds render",
            MeshSpec(
                pods=2_000,
                services=200,
                namespaces=10,
                waypoints=4,
                nodes=200,
                authorization_policies=40,
            ),
            200,
            SoakSpec(seconds=1800),
        ),
        _soak(
            "soak-short",
            "the soak in 2 minutes on a small mesh (the test suite runs it)",
            MeshSpec(
                pods=400,
                services=40,
                namespaces=4,
                waypoints=2,
                nodes=30,
                authorization_policies=8,
            ),
            30,
            SoakSpec(seconds=120, settle_seconds=30),
        ),
        Scenario(
            name="ambient-10k",
            summary="10,000 idle ztunnel streams over TLS (1k-pod mesh) and one pod change to all "
            "of them (T1, T3)",
            mesh=MeshSpec(
                pods=1_000,
                services=100,
                namespaces=10,
                waypoints=10,
                nodes=10_000,
                authorization_policies=20,
            ),
            ztunnels=10_000,
            tls=True,
            singles=5,
            connect_rate=250,
            idle_seconds=10,
            sync_timeout=300,
            settle_seconds=30,
            single_gap=1.0,
            targets={
                "single_change_p99": 2_500,
                "single_change_floor_ratio": FLOOR_RATIO,
                "server_rss_synced": 1_500,
                "server_rss_per_proxy": 150,
                "nacks": 0,
                "stream_errors": 0,
                "changes_not_converged": 0,
            },
        ),
    ]
}
