"""The ``xds`` command: serve, render, version (and the subcommands areas add).

Exit codes: 0 success, 2 usage error, 1 runtime failure with a one-line
reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import xds.grpc_logging  # noqa: F401  (before anything imports grpc)
from xds import logs
from xds.cli import bootstrap, ca
from xds.cli import client as client_cli
from xds.cli.common import EXIT_FAILURE, EXIT_USAGE, CommandError, Parser, UsageError
from xds.version import __version__

if TYPE_CHECKING:
    from xds.model.mesh import MeshConfig
    from xds.plane.app import Preloaded, ServeOptions
    from xds.security.plane import SecurityOptions
    from xds.sources.files import PreloadInProgress
    from xds.sources.kubernetes.source import KubernetesOptions


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="xds", description="An xDS control plane for Istio ambient mode.")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="run the control plane")
    serve.add_argument(
        "--config",
        type=Path,
        metavar="DIR",
        help="directory of Kubernetes YAML manifests (default: the bundled demo mesh)",
    )
    serve.add_argument(
        "--listen-address", default="0.0.0.0", metavar="HOST", help="address every port listens on"
    )
    serve.add_argument(
        "--xds-port",
        type=_port,
        default=15010,
        help="plaintext xDS (config only, no secrets); 0 disables",
    )
    serve.add_argument(
        "--secure-port",
        type=_port,
        default=15012,
        help="xDS and CA over TLS with token authentication",
    )
    serve.add_argument(
        "--http-port", type=_port, default=15014, help="/ready, /metrics, /debug; 0 disables"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        type=_log_levels,
        help='"info", or per scope: "ads:debug,default:info"',
    )
    serve.add_argument(
        "--log-as-json",
        action="store_true",
        help="one JSON object per event (time, level, scope, msg, fields), "
        "as istiod's --log_as_json",
    )
    serve.add_argument(
        "--debounce-after",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="push once changes have been quiet this long; changes that never pause go out "
        "every twice this long (or twice the last batch's translation, if longer)",
    )
    serve.add_argument(
        "--debounce-max",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="push at the latest this long after the first change of a batch",
    )
    processes = serve.add_mutually_exclusive_group()
    processes.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="serving processes sharing the ports (SO_REUSEPORT), fed by one config "
        "process that runs the sources and translation (default: one per usable CPU; "
        "a single process on one CPU)",
    )
    processes.add_argument(
        "--single-process",
        action="store_true",
        help="sources, translation and serving in one process (for debugging)",
    )
    serve.add_argument(
        "--poll-interval",
        type=_seconds,
        default=0.1,
        metavar="SECONDS",
        help="how often the --config directory is checked for changes when it is "
        "polled (--no-file-events, no inotify, the directory missing, or, with "
        "--single-process, while changes flow: three within a second)",
    )
    serve.add_argument(
        "--no-file-events",
        dest="file_events",
        action="store_false",
        help="poll the --config directory instead of following file events (inotify); "
        "for file systems without them",
    )
    serve.add_argument(
        "--trust-domain",
        type=ca.trust_domain_arg,
        help="SPIFFE trust domain of workload identities (default: the mesh config's "
        "trustDomain, else cluster.local)",
    )
    _add_mesh_config_argument(serve)
    serve.add_argument(
        "--cluster-id",
        default="Kubernetes",
        help="this cluster's name (istiod's CLUSTER_ID): workload uids, and "
        "the clusterid header tokens must match",
    )
    serve.add_argument(
        "--max-new-streams",
        type=_seconds,
        default=1000.0,
        metavar="PER_SECOND",
        help="new xDS streams accepted per second (a stream waits up to 1 s, "
        "then gets RESOURCE_EXHAUSTED), as istiod's "
        "PILOT_MAX_REQUESTS_PER_SECOND; 0: no limit (default %(default)s)",
    )
    serve.add_argument(
        "--max-connection-age",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="end gRPC connections after this long (default 30 min, as istiod), "
        "so proxies spread over the replicas; 0: never",
    )
    _add_kubernetes_arguments(serve)
    group = serve.add_argument_group("Kubernetes mode: writes to the cluster")
    group.add_argument(
        "--lease-duration",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="leader election: only the holder of the Lease writes (root "
        "ConfigMaps, waypoints, status, the CA Secret); a dead leader is "
        "replaced within this time (default %(default)s)",
    )
    group.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_false",
        help="write without holding the Lease (a single replica only)",
    )
    group.add_argument(
        "--no-waypoint-controller",
        dest="waypoint_controller",
        action="store_false",
        help="do not create the Deployments of istio-waypoint Gateways",
    )
    group.add_argument(
        "--waypoint-image",
        default="",
        metavar="IMAGE",
        help="the Envoy image of waypoint Deployments (default: stock Envoy 1.40 from Docker Hub)",
    )
    ca.add_serve_arguments(serve)
    serve.set_defaults(run=_serve)

    render = commands.add_parser("render", help="print the resources a proxy would receive")
    render.add_argument("--config", type=Path, metavar="DIR")
    render.add_argument(
        "--node",
        required=True,
        metavar="NODE_ID",
        help="e.g. ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local",
    )
    render.add_argument(
        "--gateway",
        metavar="NAME",
        help="for waypoint nodes: the Gateway they serve (default: from the "
        "pod name <gateway>-<hash>)",
    )
    render.add_argument("--trust-domain", type=ca.trust_domain_arg)
    _add_mesh_config_argument(render)
    render.add_argument("--cluster-id", default="Kubernetes")
    render.add_argument(
        "--keep-going",
        action="store_true",
        help="render even if some manifests are invalid (each is still "
        "printed to stderr), as the server would serve the rest",
    )
    _add_kubernetes_arguments(render)
    render.set_defaults(run=_render)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(run=lambda args: print(__version__) or 0)

    ca.register(commands)
    bootstrap.register(commands)
    client_cli.register(commands)
    return parser


def _add_kubernetes_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kubernetes mode")
    group.add_argument(
        "--kubernetes",
        action="store_true",
        help="read the mesh from a cluster (instead of --config): in a pod its "
        "own service account, else --kubeconfig, $KUBECONFIG or "
        "~/.kube/config",
    )
    group.add_argument("--kubeconfig", type=Path, metavar="FILE")
    group.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    group.add_argument(
        "--token-audiences",
        type=_list_arg,
        default=("istio-ca",),
        metavar="AUD[,AUD...]",
        help="audiences a bearer token may be for (TokenReview; default istio-ca)",
    )
    group.add_argument(
        "--recheck-interval",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how often kinds whose CRD is missing (or RBAC forbids) are looked for again",
    )


def _kubernetes_options(args: argparse.Namespace) -> KubernetesOptions | None:
    if not args.kubernetes:
        if args.kubeconfig is not None or args.context is not None:
            raise UsageError("--kubeconfig and --context need --kubernetes")
        return None
    if args.config is not None:
        raise UsageError("--config and --kubernetes are alternatives: use one")
    from xds.sources.kubernetes.api import ClusterConfig
    from xds.sources.kubernetes.leader import LeaseTiming
    from xds.sources.kubernetes.source import KubernetesOptions

    lease: LeaseTiming | None = None
    if getattr(args, "leader_election", True):
        try:
            lease = LeaseTiming.scaled(getattr(args, "lease_duration", 30.0))
        except ValueError:
            raise UsageError("--lease-duration must be positive") from None
    return KubernetesOptions(
        ClusterConfig(args.kubeconfig, args.context),
        recheck_interval=args.recheck_interval,
        lease=lease,
        manage_waypoints=getattr(args, "waypoint_controller", True),
        waypoint_image=getattr(args, "waypoint_image", ""),
    )


def _list_arg(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("needs at least one value")
    return items


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: use 1 to 64 workers")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def _log_levels(text: str) -> str:
    try:
        logs.parse_levels(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_mesh_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mesh-config",
        type=Path,
        metavar="FILE",
        help="istiod's mesh config: the mesh YAML of the istio ConfigMap, or the ConfigMap "
        "(trustDomain, rootNamespace, extensionProviders for CUSTOM policies; other "
        "fields are reported as ignored); --trust-domain wins over its trustDomain. "
        "With --kubernetes and no file: the istio ConfigMap of the system namespace, "
        "read at start-up",
    )


def _mesh_config(args: argparse.Namespace, tell: Callable[[str], None]) -> MeshConfig:
    """The mesh config of the flags; ``tell`` hears which fields of the file are ignored."""
    from xds.model.mesh import MeshConfig
    from xds.sources.mesh_config import MeshConfigError, load_mesh_config

    config = MeshConfig(cluster_id=args.cluster_id)
    if args.mesh_config is not None:
        try:
            config, ignored = load_mesh_config(args.mesh_config, config)
        except MeshConfigError as error:
            raise UsageError(f"--mesh-config {error}") from None
        if ignored:
            tell(", ".join(ignored))
    elif getattr(args, "kubernetes", False):
        try:
            config, ignored = _cluster_mesh_config(args, config)
        except MeshConfigError as error:
            raise RuntimeError(f"mesh config: {error}") from None
        if ignored:
            tell(", ".join(ignored))
    if args.trust_domain is not None:
        config = replace(config, trust_domain=args.trust_domain)
    return config


def _cluster_mesh_config(
    args: argparse.Namespace, base: MeshConfig
) -> tuple[MeshConfig, tuple[str, ...]]:
    """The istio ConfigMap's mesh config, read once before serving: the CA's trust
    domain must be right from the first certificate on."""
    from xds.sources.kubernetes.api import connect
    from xds.sources.kubernetes.mesh_config import read_mesh_config

    kubernetes = _kubernetes_options(args)  # the usage checks first
    assert kubernetes is not None
    namespace = getattr(args, "system_namespace", None) or "istio-system"

    async def read() -> tuple[MeshConfig, tuple[str, ...], bool]:
        api = await connect(kubernetes.cluster)
        try:
            return await read_mesh_config(api, namespace, base)
        finally:
            await api.close()

    config, ignored, _found = asyncio.run(read())
    return config, ignored


def _log_ignored_mesh_fields(source: str) -> Callable[[str], None]:
    def tell(fields: str) -> None:
        logging.getLogger("xds.app").warning(
            "mesh config fields not supported by this control plane are ignored",
            extra={"source": source, "fields": fields},
        )

    return tell


def _serve(args: argparse.Namespace) -> int:
    from xds.plane.workers import default_workers

    logs.configure(args.log_level, as_json=args.log_as_json)
    if args.config is not None and not args.config.is_dir():
        raise RuntimeError(f"--config {args.config}: not a directory")
    if args.debounce_max < args.debounce_after:
        raise UsageError("--debounce-max must not be smaller than --debounce-after")
    mesh = _mesh_config(args, _log_ignored_mesh_fields(str(args.mesh_config or "configmap istio")))
    try:
        security = replace(
            ca.security_options(args, trust_domain=mesh.trust_domain),
            token_audiences=args.token_audiences,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    workers = 0 if args.single_process else (args.workers or default_workers())
    kubernetes = _kubernetes_options(args)
    # The mesh is parsed in forked workers while this process imports the rest of the
    # program (a third of a second; every process it forks shares what it imports).
    reading = _start_preload(args.config) if workers > 0 and kubernetes is None else None
    try:
        return _serve_with(args, mesh, security, workers, kubernetes, reading)
    finally:
        if reading is not None:
            reading.cancel()  # if the start failed before taking the result


def _serve_with(
    args: argparse.Namespace,
    mesh: MeshConfig,
    security: SecurityOptions,
    workers: int,
    kubernetes: KubernetesOptions | None,
    reading: PreloadInProgress | None,
) -> int:
    from xds.plane.app import ControlPlane, Role, ServeOptions
    from xds.plane.heap import HeapTrimmer
    from xds.plane.workers import run_workers
    from xds.tasks import cancel_and_wait

    options = ServeOptions(
        config_dir=args.config,
        listen_host=args.listen_address,
        xds_port=args.xds_port,
        secure_port=args.secure_port,
        http_port=args.http_port,
        debounce_after=args.debounce_after,
        debounce_max=args.debounce_max,
        mesh=mesh,
        security=security,
        poll_interval=args.poll_interval,
        watch_events=args.file_events,
        reuse_port=workers > 0,
        kubernetes=kubernetes,
        max_connection_age=args.max_connection_age,
        max_new_streams=args.max_new_streams,
    )

    async def main(options: ServeOptions, preloaded: Preloaded | None = None) -> None:
        plane = ControlPlane(options, preloaded=preloaded)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # A stop while starting ends the start (a serving process may be waiting for a
        # config process that will never come).
        starting = asyncio.create_task(plane.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await cancel_and_wait(starting)
            await plane.stop(grace=0)
            return
        if starting.exception() is not None:
            # Exiting anyway: a stop signal now would only interrupt the teardown.
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
            # Close what did start, so the reason is the only thing printed.
            await plane.stop(grace=0)
            starting.result()
        await stopping
        await plane.stop()

    if workers == 0:
        asyncio.run(main(options))
        return 0
    if options.secure_port != 0 and options.kubernetes is None:
        # Create the CA once, before forking, so that serving processes never race
        # to write a root of their own. (In a cluster the Secret's create-if-absent
        # settles that race.)
        from xds.security.plane import MeshSecurity

        MeshSecurity.open(options.security).close()

    preloaded = _preloaded(options, reading)
    trimmer = HeapTrimmer.for_this_process(min_free=0)
    if trimmer is not None:
        # Reading the mesh freed the files' bytes and more beneath what stays; the
        # processes forked next would each keep a copy of those pages.
        trimmer.trim()
    # The commit stream's socket, in a directory only this user can enter.
    with tempfile.TemporaryDirectory(prefix="xds-serve-") as directory:
        socket = Path(directory) / "commits.sock"
        config = replace(options, role=Role.CONFIG, commit_socket=socket, serving_processes=workers)
        serving = replace(options, role=Role.SERVING, commit_socket=socket)

        def process(index: int) -> int:
            asyncio.run(main(config if index == 0 else serving, preloaded))
            return 0

        return run_workers(1 + workers, process, vital={0})


def _start_preload(config: Path | None) -> PreloadInProgress | None:
    """File mode, split: the mesh read once before forking, so that every process starts
    with it (shared copy-on-write; see ``files.PreloadInProgress``). None when the
    directory cannot be read now (the config process reports why, as always)."""
    from xds.sources.demo import demo_directory
    from xds.sources.files import PreloadInProgress

    try:
        return PreloadInProgress(config or demo_directory())
    except OSError:
        return None


def _preloaded(options: ServeOptions, reading: PreloadInProgress | None) -> Preloaded | None:
    if reading is None:
        return None
    from xds.model.mesh import MeshStore
    from xds.plane.app import Preloaded

    mesh = MeshStore(options.mesh)
    return Preloaded(mesh, reading.finish(mesh))


def _render(args: argparse.Namespace) -> int:
    from xds.plane.render import render

    def ignored(fields: str) -> None:
        print(f"xds render: mesh config fields ignored: {fields}", file=sys.stderr)

    config = _mesh_config(args, ignored)

    def report(line: str) -> None:
        print(f"xds render: invalid manifest: {line}", file=sys.stderr)

    rendered = render(
        args.config,
        args.node,
        gateway=args.gateway,
        mesh_config=config,
        kubernetes=_kubernetes_options(args),
        keep_going=args.keep_going,
        report=report,
    )
    print(json.dumps(rendered, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # bare `xds`: what it can do, not an error line
        return 2
    command = "xds"
    try:
        args = parser.parse_args(argv)
        command = f"xds {getattr(args, 'command_name', None) or args.command}"
        return int(args.run(args))
    except UsageError as e:
        print(f"{e.command or command}: usage error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as e:
        print(f"{command}: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        print(f"{command}: {e}", file=sys.stderr)
        return EXIT_FAILURE
