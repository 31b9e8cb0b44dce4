"""``python -m loadtest``: simulated ztunnels and waypoints against our xDS server and the floor.

    .venv/bin/python -m loadtest --scenario ambient-1k --report /tmp/ambient-1k.json
    .venv/bin/python -m loadtest --list
    .venv/bin/python -m loadtest --scenario ambient-churn --workers 2 --poll-interval 0.25
    .venv/bin/python -m loadtest --scenario smoke --xds-address 127.0.0.1:15010 \\
        --config-dir /path/the/server/reads --http-port 15014
    .venv/bin/python -m loadtest --scenario ambient-1k --kubeconfig ~/.kube/test-cluster

By default the harness writes the scenario's mesh to a temporary directory
and starts ``xds serve`` on free loopback ports; ``--workers`` and
``--server-arg`` are passed through to it. With ``--xds-address`` it drives a
server that is already running instead (changes need ``--config-dir``, the
directory that server reads; the harness writes its mesh there). With
``--kubeconfig`` the mesh goes into that cluster's API server instead, every
change is made through the API, and a started server runs ``--kubernetes``;
so any control plane watching that cluster can be measured the same way.

Exit status: 0 when the run completed (targets met or not: see the table
and the JSON's ``met``), 1 when it could not run, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest import figures
from loadtest.churn import ChurnSpec
from loadtest.meshfiles import FORMATS
from loadtest.pinning import parse_cpus
from loadtest.profiling import PHASES, summarize
from loadtest.progress import Progress
from loadtest.report import Report, git_commit
from loadtest.run import External, RunOptions, default_client_processes, run
from loadtest.scenarios import PRESETS, CsrLoad, Scenario
from loadtest.servers import REPO, ServeOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", choices=sorted(PRESETS), default="smoke")
    parser.add_argument("--list", action="store_true", help="describe the presets and exit")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the figures as JSON")
    shape = parser.add_argument_group("scenario overrides")
    shape.add_argument("--ztunnels", type=int)
    shape.add_argument("--waypoints", type=int)
    shape.add_argument("--pods", type=int)
    shape.add_argument("--services", type=int)
    shape.add_argument("--singles", type=int, help="isolated pod changes")
    shape.add_argument("--churn-rate", type=float, metavar="PODS/S")
    shape.add_argument("--duration", type=float, metavar="SECONDS", help="churn (or soak) duration")
    shape.add_argument(
        "--service-edits", type=float, metavar="PER_S", help="Service edits per second during churn"
    )
    shape.add_argument(
        "--policy-edits",
        type=float,
        metavar="PER_S",
        help="AuthorizationPolicy edits per second during churn",
    )
    shape.add_argument(
        "--route-edits", type=float, metavar="PER_S", help="HTTPRoute edits per second during churn"
    )
    shape.add_argument(
        "--connect-rate",
        type=float,
        metavar="PER_S",
        help="new connections per second over all client processes",
    )
    shape.add_argument("--idle", type=float, metavar="SECONDS", dest="idle_seconds")
    shape.add_argument("--poll-interval", type=float, metavar="SECONDS")
    shape.add_argument("--debounce-after", type=float, metavar="SECONDS")
    shape.add_argument("--debounce-max", type=float, metavar="SECONDS")
    shape.add_argument(
        "--pods-per-file",
        type=int,
        metavar="N",
        help="pods per manifest file (a pod change re-reads its file)",
    )
    shape.add_argument(
        "--tls",
        action="store_true",
        help="proxies use the TLS port (bearer tokens, SDS for waypoints)",
    )
    shape.add_argument(
        "--plaintext",
        action="store_true",
        help="proxies use the plaintext port (drops the preset's TLS and CSRs)",
    )
    shape.add_argument(
        "--csr-requests",
        type=int,
        metavar="N",
        help="add (or resize) a CreateCertificate storm of N calls (implies --tls)",
    )
    shape.add_argument(
        "--on-demand",
        action="store_true",
        help="ztunnels in on-demand mode (XDS_ON_DEMAND=true): each gets its "
        "node's pods, not the whole mesh (no floor: it serves wildcard only)",
    )
    shape.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    server = parser.add_argument_group("server")
    processes = server.add_mutually_exclusive_group()
    processes.add_argument(
        "--workers",
        type=int,
        default=None,
        help="passed to xds serve --workers (default: the server's own, one per CPU)",
    )
    processes.add_argument("--single-process", action="store_true", help="passed to xds serve")
    server.add_argument(
        "--server-cpus",
        type=_cpus,
        metavar="LIST",
        help="pin the server (and the floor) to these CPUs, e.g. 0 or 0-1",
    )
    server.add_argument(
        "--client-cpus",
        type=_cpus,
        metavar="LIST",
        help="pin the load generator's processes to these CPUs",
    )
    server.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for xds serve (repeatable)",
    )
    server.add_argument("--log-level", default="info", help="xds serve --log-level")
    server.add_argument(
        "--server-command",
        metavar="CMD",
        help='instead of "python -m xds serve" (split like a shell would)',
    )
    server.add_argument(
        "--server-cwd",
        type=Path,
        default=REPO,
        help="directory the server command runs in (another checkout)",
    )
    server.add_argument(
        "--client-procs",
        type=int,
        default=default_client_processes(),
        help="client processes running the simulated proxies",
    )
    server.add_argument(
        "--workdir", type=Path, help="keep the mesh, CA and server log here (default: temporary)"
    )
    server.add_argument(
        "--manifest-format",
        choices=FORMATS,
        default="yaml",
        help="how the mesh is written for the file source",
    )
    server.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="record the server with py-spy (raw collapsed stacks)",
    )
    server.add_argument("--profile-phase", choices=PHASES, default="changes")
    kube = parser.add_argument_group("Kubernetes")
    kube.add_argument(
        "--kubeconfig",
        type=Path,
        metavar="FILE",
        help="load the mesh into this cluster's API server and make every change "
        "through it; the started server runs with --kubernetes (an external "
        "one, e.g. istiod, must watch that cluster)",
    )
    external = parser.add_argument_group("external server")
    external.add_argument(
        "--xds-address", metavar="HOST:PORT", help="drive a running server instead of starting one"
    )
    external.add_argument(
        "--config-dir",
        type=Path,
        help="the directory that server reads (the harness writes its mesh)",
    )
    external.add_argument("--http-port", type=int, help="that server's /metrics port")
    external.add_argument("--ca-dir", type=Path, help="that server's CA (TLS scenarios)")
    external.add_argument(
        "--server-pid",
        type=int,
        action="append",
        default=[],
        help="pid(s) to sample for CPU and memory",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def scenario_from(args: argparse.Namespace) -> Scenario:
    scenario = PRESETS[args.scenario]
    mesh = scenario.mesh
    if args.pods is not None:
        mesh = replace(mesh, pods=args.pods)
    if args.services is not None:
        mesh = replace(mesh, services=args.services)
    churn = scenario.churn
    churn_overrides = {
        k: v
        for k, v in (
            ("pods_per_second", args.churn_rate),
            ("seconds", args.duration),
            ("service_edits_per_second", args.service_edits),
            ("policy_edits_per_second", args.policy_edits),
            ("route_edits_per_second", args.route_edits),
        )
        if v is not None
    }
    soak = scenario.soak
    if soak is not None and args.duration is not None:
        soak = replace(soak, seconds=args.duration)
        churn_overrides.pop("seconds")
    if churn_overrides:
        churn = replace(churn or ChurnSpec(), **churn_overrides)
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "ztunnels",
            "waypoints",
            "singles",
            "connect_rate",
            "idle_seconds",
            "poll_interval",
            "debounce_after",
            "debounce_max",
            "pods_per_file",
        )
        if getattr(args, name) is not None
    }
    if args.csr_requests is not None:
        overrides["csr"] = replace(scenario.csr or CsrLoad(), requests=args.csr_requests)
    if args.tls or args.csr_requests is not None:
        overrides["tls"] = True
    if args.plaintext:
        overrides.update(tls=False, csr=None)
    if args.on_demand:
        overrides["on_demand"] = True
    if args.ztunnels is not None and args.ztunnels > mesh.nodes:
        mesh = replace(mesh, nodes=args.ztunnels)
    return replace(
        scenario,
        mesh=mesh,
        churn=churn,
        soak=soak,
        floor=scenario.floor and not args.no_floor and not args.on_demand,
        **overrides,
    )


def describe() -> str:
    lines = []
    for scenario in PRESETS.values():
        targets = ", ".join(f"{k} {v:g}" for k, v in scenario.targets.items())
        lines.append(f"{scenario.name:16} {scenario.summary}\n{'':16} targets: {targets}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(describe())
        return 0
    if args.config_dir is not None and args.xds_address is None:
        parser.error("--config-dir is for an external server (--xds-address)")
    if args.config_dir is not None and args.kubeconfig is not None:
        parser.error("--config-dir and --kubeconfig are alternatives")
    scenario = scenario_from(args)
    if args.kubeconfig is not None and scenario.tls:
        parser.error(
            "TLS scenarios are file-mode only for now: in Kubernetes mode the "
            "simulated proxies would need service-account tokens"
        )
    external = (
        None
        if args.xds_address is None
        else External(
            args.xds_address, args.config_dir, args.http_port, args.ca_dir, args.server_pid
        )
    )
    options = RunOptions(
        client_processes=args.client_procs,
        serve=ServeOptions(
            command=shlex.split(args.server_command)
            if args.server_command
            else ServeOptions().command,
            cwd=args.server_cwd,
            workers=0 if args.single_process else args.workers,
            poll_interval=scenario.poll_interval,
            debounce_after=scenario.debounce_after,
            debounce_max=scenario.debounce_max,
            log_level=args.log_level,
            extra_args=list(args.server_arg),
            cpus=args.server_cpus,
        ),
        client_cpus=args.client_cpus,
        external=external,
        floor=scenario.floor,
        workdir=args.workdir,
        manifest_format=args.manifest_format,
        profile=args.profile,
        profile_phase=args.profile_phase,
        kubeconfig=args.kubeconfig,
    )
    progress = Progress(quiet=args.quiet)
    try:
        result = run(scenario, options, progress)
    except Exception as e:
        print(f"loadtest: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    report = figures.build(result, Report(scenario.name, git_commit(REPO)))
    print()
    print(f"scenario {scenario.name} (commit {report.commit[:12]})")
    print(report.table())
    for note in report.notes:
        print(f"note: {note}")
    missed = report.missed()
    print(
        f"{len(missed)} target(s) missed"
        + (": " + ", ".join(m.name for m in missed) if missed else "")
    )
    if args.report is not None:
        report.write(args.report)
        print(f"report written to {args.report}")
    if args.profile is not None and args.profile.exists():
        print(f"\nserver profile ({args.profile_phase}): {args.profile}")
        print(summarize(args.profile, 25))
    return 0


def _cpus(text: str) -> frozenset[int]:
    try:
        return parse_cpus(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


if __name__ == "__main__":
    raise SystemExit(main())
