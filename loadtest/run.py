"""One run of a scenario: the floor first, then our server, with the same proxies and changes.

1. Generate the mesh (``meshgen`` + routes), the proxies' identities and the
   plan of changes (single changes, churn), all deterministic.
2. Floor: start it, connect the ztunnels, make the same ztunnel changes,
   disconnect, stop it.
3. Server: write the mesh to the config directory, start ``xds serve`` (time
   to /ready), connect everything, idle (memory per proxy), single changes,
   route edits, churn, CSR storm; scrape /metrics; stop it.
4. ``figures`` turns both into the report.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadtest import churn, consistency, mesh, nodes, phases, soak
from loadtest.bench_ca import make_csrs
from loadtest.csr import CsrJob, CsrResult
from loadtest.fleet import Fleet
from loadtest.floor import FloorPush, FloorSetup
from loadtest.kubecluster import KubeClient, MeshCluster
from loadtest.meshfiles import Manifest, MeshFiles
from loadtest.pinning import describe
from loadtest.procstat import Sampler, Window
from loadtest.profiling import Profile
from loadtest.progress import Progress
from loadtest.proxies import ProxySpec
from loadtest.scenarios import Scenario
from loadtest.servers import (
    ExternalServer,
    FloorServer,
    Mesh,
    ServeOptions,
    Subject,
    Tls,
    XdsServer,
)
from loadtest.soak import SoakResult
from loadtest.worker import Endpoint, Status


@dataclass
class External:
    """A server started elsewhere (``--xds-address``)."""

    address: str
    config_dir: Path | None = None
    http_port: int | None = None
    ca_dir: Path | None = None
    pids: list[int] = field(default_factory=list)


@dataclass
class RunOptions:
    client_processes: int = 2
    serve: ServeOptions = field(default_factory=ServeOptions)
    external: External | None = None
    floor: bool = True
    workdir: Path | None = None
    """Keep generated files and the server log here (default: a temporary directory)."""
    manifest_format: str = "yaml"
    profile: Path | None = None
    """Record the server with py-spy into this file during ``profile_phase``."""
    profile_phase: str = "changes"
    kubeconfig: Path | None = None
    """Load the mesh into this cluster and make changes through its API (``--kubernetes``)."""
    client_cpus: frozenset[int] | None = None
    """Pin the load generator's processes to these CPUs (the server's: ``serve.cpus``; the
    floor runs pinned like the server)."""


@dataclass
class Plan:
    singles: list[churn.Change]
    route_singles: list[churn.Change]
    churn: list[churn.Scheduled]

    def for_floor(self) -> Plan:
        """The floor serves ztunnels only."""
        return Plan(
            [c for c in self.singles if churn.for_ztunnels(c.audience)],
            [],
            [s for s in self.churn if churn.for_ztunnels(s.change.audience)],
        )


@dataclass
class Exercise:
    """Everything measured against one subject."""

    label: str
    proxies: int
    sync: phases.Synced
    final: Status
    singles: phases.Changes | None = None
    routes: phases.Changes | None = None
    churn: phases.Changes | None = None
    waypoints_served: bool = False
    startup_seconds: float | None = None
    rss_ready: int = 0
    rss_synced: int = 0
    sync_window: Window | None = None
    idle_window: Window | None = None
    """Every proxy connected and synced, nothing changing: the subject's idle cost."""
    singles_window: Window | None = None
    churn_window: Window | None = None
    whole: Window | None = None
    clients: Window | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """The server's /metrics at the end of the run."""
    change_metrics: dict[str, float] = field(default_factory=dict)
    """How the server's /metrics moved during the changes (singles, route edits, churn)."""
    pushes: list[FloorPush] = field(default_factory=list)
    csr: list[CsrResult] = field(default_factory=list)
    soak: SoakResult | None = None


@dataclass
class RunResult:
    scenario: Scenario
    options: RunOptions
    server: Exercise
    floor: Exercise | None
    notes: list[str]


def run(scenario: Scenario, options: RunOptions, progress: Progress) -> RunResult:
    notes: list[str] = []
    documents = mesh.manifests(scenario.mesh, scenario.routes)
    proxies = _proxies(scenario, documents)
    plan = _plan(scenario, documents)
    progress.line(f"scenario {scenario.name}: {scenario.summary}")
    progress.line(
        f"mesh: {scenario.mesh.pods} pods, {scenario.mesh.services} services, "
        f"{scenario.routes} routes; {scenario.ztunnels} ztunnels, "
        f"{scenario.waypoints} waypoints; {options.client_processes} client processes"
    )
    with _workdir(options.workdir) as work, Sampler() as sampler, contextlib.ExitStack() as stack:
        tls = _tls(scenario, options, work, proxies)
        fleet = Fleet(options.client_processes, options.client_cpus)
        if options.client_cpus or options.serve.cpus:
            notes.append(
                f"pinned: server and floor to CPUs {describe(options.serve.cpus)}, "
                f"client processes to CPUs {describe(options.client_cpus)}"
            )
        stack.callback(fleet.close)
        sampler.watch("clients", fleet.pids)
        floor = None
        if scenario.floor and options.floor:
            floor = _exercise_floor(
                scenario,
                fleet,
                plan.for_floor(),
                proxies,
                tls,
                sampler,
                progress,
                options.serve.cpus,
            )
        if options.kubeconfig is not None:
            progress.line(
                f"mesh: loading {len(documents)} objects into the cluster of {options.kubeconfig}"
            )
        files = _files(scenario, options, work, documents)
        if isinstance(files, MeshCluster):
            notes.append(
                f"Kubernetes mode: the mesh was loaded through {files.client.server}; "
                "changes are made through the API"
            )
        server = _exercise_server(
            scenario,
            options,
            fleet,
            plan,
            documents,
            proxies,
            tls,
            files,
            work,
            sampler,
            progress,
            notes,
        )
    return RunResult(scenario, options, server, floor, notes)


# -- preparation ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="loadtest-") as temporary:
        yield Path(temporary)


def _proxies(scenario: Scenario, documents: list[Manifest]) -> list[ProxySpec]:
    ztunnels = nodes.ztunnels(
        scenario.ztunnels, mesh.node_count(documents), on_demand=scenario.on_demand
    )
    waypoints = nodes.waypoints(
        scenario.waypoints, mesh.waypoint_pods(documents), scenario.sotw_waypoints
    )
    return ztunnels + waypoints


def _plan(scenario: Scenario, documents: list[Manifest]) -> Plan:
    planner = churn.Planner(documents, cluster_id=nodes.CLUSTER_ID, on_demand=scenario.on_demand)
    singles = planner.singles(scenario.singles)
    route_singles = [
        planner.route_edit()
        for _ in range(scenario.route_singles)
        if planner.available("route-edit")
    ]
    schedule = planner.churn(scenario.churn) if scenario.churn is not None else []
    return Plan(singles, route_singles, schedule)


def _tls(
    scenario: Scenario, options: RunOptions, work: Path, proxies: list[ProxySpec]
) -> Tls | None:
    if not scenario.tls:
        return None
    accounts = [p.account for p in proxies]
    if scenario.csr is not None:
        accounts.append(scenario.csr.account)
    if scenario.soak is not None:
        accounts.append(scenario.soak.csr_account)
    if options.external is not None:
        if options.external.ca_dir is None:
            raise ValueError(
                f"scenario {scenario.name} uses the TLS port: give the external "
                "server's --ca-dir so that the load test can mint tokens"
            )
        return Tls.prepare(options.external.ca_dir, accounts, create=False)
    ca_dir = work / "ca"
    if ca_dir.exists():
        shutil.rmtree(ca_dir)
    return Tls.prepare(ca_dir, accounts, create=True)


def _files(
    scenario: Scenario, options: RunOptions, work: Path, documents: list[Manifest]
) -> Mesh | None:
    if options.kubeconfig is not None:
        cluster = MeshCluster(KubeClient(options.kubeconfig))
        cluster.write(documents)
        return cluster
    if options.external is not None and options.external.config_dir is None:
        return None
    directory = (
        options.external.config_dir
        if options.external is not None and options.external.config_dir is not None
        else work / "mesh"
    )
    files = MeshFiles(directory, scenario.pods_per_file, options.manifest_format)
    files.write(documents)
    return files


# -- the two subjects ------------------------------------------------------------------------------


def _exercise_floor(
    scenario: Scenario,
    fleet: Fleet,
    plan: Plan,
    proxies: list[ProxySpec],
    tls: Tls | None,
    sampler: Sampler,
    progress: Progress,
    cpus: frozenset[int] | None = None,
) -> Exercise:
    progress.line("floor: starting (bare grpc.aio fan-out of pre-serialized bytes)")
    setup = FloorSetup(
        scenario.mesh,
        scenario.routes,
        scenario.poll_interval,
        scenario.debounce_after,
        tls.ca_dir if tls is not None else None,
    )
    subject = FloorServer(setup, tls, cpus=cpus)
    try:
        ztunnels = [p for p in proxies if p.kind == "ztunnel"]
        return _exercise(
            scenario, fleet, subject, ztunnels, plan, sampler, progress, [], pushes=subject.pushes
        )
    finally:
        subject.stop()


def _exercise_server(
    scenario: Scenario,
    options: RunOptions,
    fleet: Fleet,
    plan: Plan,
    documents: list[Manifest],
    proxies: list[ProxySpec],
    tls: Tls | None,
    files: Mesh | None,
    work: Path,
    sampler: Sampler,
    progress: Progress,
    notes: list[str],
) -> Exercise:
    subject: XdsServer | ExternalServer
    startup = None
    if options.external is None:
        assert files is not None
        serve = replace(
            options.serve, extra_args=[*scenario.server_args, *options.serve.extra_args]
        )
        subject = XdsServer(files, serve, work / "server.log", tls)
        progress.line(f"server: {' '.join(subject.command())}")
        startup = subject.start()
        progress.line(f"server: ready in {startup:.2f} s (log: {work / 'server.log'})")
    else:
        external = options.external
        endpoint = Endpoint(
            external.address, tls.root_pem if tls else None, tokens=dict(tls.tokens) if tls else {}
        )
        subject = ExternalServer(endpoint, files, external.http_port, external.pids)
        if isinstance(files, MeshFiles):
            progress.line(
                f"server: external at {external.address}; mesh written to "
                f"{files.directory}, waiting two poll intervals for it"
            )
            time.sleep(2 * scenario.poll_interval + 1.0)
        elif files is not None:
            progress.line(
                f"server: external at {external.address}; mesh loaded into "
                f"{files.client.server}, waiting for it to be read"
            )
            time.sleep(5.0)
    try:
        result = _exercise(
            scenario,
            fleet,
            subject,
            proxies,
            plan,
            sampler,
            progress,
            notes,
            tls=tls,
            profile=options.profile,
            profile_phase=options.profile_phase,
            soaking=_soaking(scenario, documents, proxies, files, tls, sampler, progress),
        )

        result.startup_seconds = startup
        result.metrics = subject.metrics()
        return result
    except Exception:
        if isinstance(subject, XdsServer):
            progress.line("server log (tail):\n" + subject.log_tail())
        raise
    finally:
        subject.stop()


def _exercise(
    scenario: Scenario,
    fleet: Fleet,
    subject: Subject,
    proxies: list[ProxySpec],
    plan: Plan,
    sampler: Sampler,
    progress: Progress,
    notes: list[str],
    *,
    tls: Tls | None = None,
    pushes: Callable[[], list[FloorPush]] | None = None,
    profile: Path | None = None,
    profile_phase: str = "changes",
    soaking: Callable[[Fleet, Subject], SoakResult] | None = None,
) -> Exercise:
    """Connect, idle, single changes, route edits, churn, CSRs and the soak, as far as
    ``plan`` and the scenario ask; CSRs only with ``tls`` (our server's TLS port)."""
    label = subject.label
    sampler.watch(label, subject.pids)
    began = sampler.now(label)
    recording = _profile(profile, subject, progress) if profile_phase == "connect" else None
    sync = phases.connect(
        fleet,
        subject,
        proxies,
        scenario.connect_rate,
        scenario.sync_timeout,
        progress,
        keep=soaking is not None,
    )
    if recording is not None:
        recording.stop()
    sync_window = sampler.window(label, sync.started_at, sync.finished_at)
    idle_started = time.monotonic()
    phases.idle(fleet, scenario.idle_seconds, progress, label)
    synced_sample = sampler.now(label)
    idle_window = sampler.window(label, idle_started, synced_sample.at)
    result = Exercise(
        label,
        len(proxies),
        sync,
        sync.status,
        rss_ready=began.rss_bytes,
        rss_synced=synced_sample.rss_bytes,
        sync_window=sync_window,
        idle_window=idle_window,
    )
    result.waypoints_served = sync.status.initial_resources.get("waypoint", 0) > 0
    settle = scenario.settle_seconds
    recording = _profile(profile, subject, progress) if profile_phase == "changes" else None
    before = subject.metrics()
    if plan.singles:
        result.singles = phases.singles(
            fleet, subject, plan.singles, settle=settle, gap=scenario.single_gap, progress=progress
        )
        result.singles_window = sampler.window(
            label, result.singles.started_at, result.singles.finished_at
        )
    if plan.route_singles:
        if result.waypoints_served:
            result.routes = phases.singles(
                fleet,
                subject,
                plan.route_singles,
                settle=settle,
                gap=scenario.single_gap,
                progress=progress,
            )
        else:
            notes.append(
                "route edits not measured: the server sent the waypoints no config "
                "(waypoint translation is not served yet)"
            )
    schedule = plan.churn
    if not result.waypoints_served:
        schedule = [s for s in schedule if churn.for_ztunnels(s.change.audience)]
        if len(schedule) < len(plan.churn):
            notes.append(
                f"{len(plan.churn) - len(schedule)} route edits left out of the churn: "
                "the server sent the waypoints no config"
            )
    if schedule:
        result.churn = phases.churn(fleet, subject, schedule, settle=settle, progress=progress)
        result.churn_window = sampler.window(
            label, result.churn.started_at, result.churn.finished_at
        )
    after = subject.metrics()
    result.change_metrics = {name: value - before.get(name, 0.0) for name, value in after.items()}
    if recording is not None:
        recording.stop()
        progress.line(f"{label}: profile written to {recording.output}")
    if scenario.csr is not None and tls is not None:
        result.csr = phases.csr(fleet, _csr_jobs(scenario, fleet, subject, tls), progress)
    if soaking is not None:
        result.soak = soaking(fleet, subject)
    result.final = fleet.status()
    ended = sampler.now(label)
    result.whole = sampler.window(label, began.at, ended.at)
    result.clients = sampler.window("clients", began.at, ended.at)
    if pushes is not None:
        result.pushes = pushes()
    fleet.disconnect()
    sampler.forget(label)
    progress.line(f"{label}: done; proxies disconnected")
    return result


def _profile(path: Path | None, subject: Subject, progress: Progress) -> Profile | None:
    if path is None:
        return None
    progress.line(f"{subject.label}: recording py-spy profile of pids {subject.pids}")
    return Profile(subject.pids, path)


def _soaking(
    scenario: Scenario,
    documents: list[Manifest],
    proxies: list[ProxySpec],
    files: Mesh | None,
    tls: Tls | None,
    sampler: Sampler,
    progress: Progress,
) -> Callable[[Fleet, Subject], SoakResult] | None:
    """The soak phase of ``scenario``, if it has one and its config directory is ours."""
    spec = scenario.soak
    if spec is None:
        return None
    if scenario.on_demand:
        raise ValueError(f"scenario {scenario.name}: the soak's check needs wildcard ztunnels")
    if not isinstance(files, MeshFiles):
        raise ValueError(
            f"scenario {scenario.name} checks the proxies against xds render of the "
            "config directory: it needs the files the server reads (file mode)"
        )
    directory = files.directory

    def expected() -> dict[str, consistency.Expected]:
        return _rendered(directory, proxies)

    def soaking(fleet: Fleet, subject: Subject) -> SoakResult:
        planner = churn.Planner(documents, cluster_id=nodes.CLUSTER_ID, seed=11, recycle=True)
        if tls is None or spec.csrs_per_second <= 0:
            return soak.run(fleet, subject, planner, spec, sampler, progress, expected=expected)
        csr_fleet = Fleet(1)
        try:
            job = CsrJob(
                subject.endpoint.address,
                tls.root_pem,
                tls.tokens[spec.csr_account],
                make_csrs(4),
                connections=1,
                closed_requests=0,
                concurrency=1,
                open_rate=spec.csrs_per_second,
                open_seconds=spec.seconds,
                start_at=time.monotonic(),
            )
            return soak.run(
                fleet,
                subject,
                planner,
                spec,
                sampler,
                progress,
                expected=expected,
                csr=(csr_fleet, job),
            )
        finally:
            csr_fleet.close()

    return soaking


def _rendered(directory: Path, proxies: list[ProxySpec]) -> dict[str, consistency.Expected]:
    """What ``xds render`` gives each kind of proxy: one state for every ztunnel, one per
    waypoint (replicas of a waypoint share it); the mesh is read and translated once."""
    from xds.plane.render import render_nodes

    first_of: dict[str, str] = {}  # audience -> a node id that has it
    for spec in proxies:
        first_of.setdefault(spec.audience, spec.node_id)
    rendered = render_nodes(directory, dict.fromkeys(first_of.values()))
    by_audience = {
        audience: consistency.expected_from_render(rendered[node_id])
        for audience, node_id in first_of.items()
    }
    return {
        "ztunnel" if spec.kind == "ztunnel" else spec.node_id: by_audience[spec.audience]
        for spec in proxies
    }


def _csr_jobs(scenario: Scenario, fleet: Fleet, subject: Subject, tls: Tls) -> list[CsrJob]:
    load = scenario.csr
    assert load is not None
    share = len(fleet)
    csrs = make_csrs(load.distinct_csrs)
    start_at = time.monotonic() + 1.0
    return [
        CsrJob(
            subject.endpoint.address,
            tls.root_pem,
            tls.tokens[load.account],
            csrs,
            connections=max(1, load.connections // share),
            closed_requests=load.requests // share,
            concurrency=load.concurrency,
            open_rate=load.open_rate / share,
            open_seconds=load.open_seconds,
            start_at=start_at,
        )
        for _ in range(share)
    ]


def default_client_processes() -> int:
    """Two per core: each process is one GIL; more than that only adds scheduling."""
    return max(2, 2 * (os.cpu_count() or 1))
