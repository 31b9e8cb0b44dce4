"""One control-plane process: sources -> model -> pipeline -> servers.

Start-up order matters: the gRPC ports open first and answer UNAVAILABLE
until the config sources have synced and the first full translation has
been published, so a proxy never receives a partial mesh.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
from prometheus_client import Counter

from xds.cpus import usable_cpus
from xds.model.core import Pod, PodPhase, Secret
from xds.model.gateway import GATEWAY_GROUP, GRPCRoute, HTTPRoute
from xds.model.mesh import ChangeSet, MeshConfig, MeshStore
from xds.plane import metrics
from xds.plane.debug_views import DebugParts, debug_endpoints, debug_types
from xds.plane.heap import HeapTrimmer
from xds.plane.hub import CommitHub
from xds.plane.pipeline import Pipeline, PushHistory
from xds.plane.replica import ReplicaSource
from xds.plane.scopes import plaintext_binder, secure_binder
from xds.plane.secrets import KeyAccess, SecretPublisher, keys_readable_in_own_namespace
from xds.security.authn import AuthenticationError, Caller, KubeTokenAuthenticator
from xds.security.identity import Identity
from xds.security.plane import MeshSecurity, SecurityOptions
from xds.serving.ads import SERVICE as ADS_SERVICE
from xds.serving.ads import AdsService, ConnectionRegistry, Unauthenticated
from xds.serving.ca_service import SERVICE_NAME as CA_SERVICE
from xds.serving.ca_service import CertificateService
from xds.serving.csds import SERVICE as CSDS_SERVICE
from xds.serving.csds import CsdsService, loopback_callers, system_namespace_callers
from xds.serving.grpc_server import Readiness, build_server
from xds.serving.http import HttpServer
from xds.serving.introspection import control_plane_identifier
from xds.serving.metrics import AdsMetrics
from xds.serving.ratelimit import StreamRateLimit
from xds.serving.store import ConfigStore
from xds.sources.files import FileSource, ParsedFiles
from xds.tasks import cancel_all
from xds.translate.base import Translator
from xds.translate.waypoint.translator import WaypointTranslator
from xds.translate.ztunnel import ZtunnelTranslator

if TYPE_CHECKING:  # imported where used: file mode does not pay for the cluster client
    from xds.sources.kubernetes.api import KubeApi
    from xds.sources.kubernetes.leader import LeaderElection
    from xds.sources.kubernetes.source import KubernetesOptions, KubernetesSource
    from xds.sources.kubernetes.waypoints.controller import WaypointController
    from xds.sources.kubernetes.waypoints.route_writer import RouteStatusWriter

log = logging.getLogger("xds.app")

SOURCE_FAILURES = Counter(
    "xds_config_source_failures", "Times the config source failed after start-up and was restarted"
)
T = TypeVar("T")


class Role(enum.Enum):
    """What one process of ``xds serve`` does.

    WHOLE: everything (``--single-process``). With ``--workers N`` one CONFIG process
    (sources, model, translation; no ports) feeds N SERVING processes (the ports,
    streams, CA and SDS) through the commit stream at ``ServeOptions.commit_socket``."""

    WHOLE = "whole"
    CONFIG = "config"
    SERVING = "serving"


@dataclass
class ServeOptions:
    """Ports: 0 disables a port; -1 binds any free port (tests read ``ControlPlane.ports``)."""

    config_dir: Path | None = None  # None: the bundled demo mesh
    listen_host: str = "0.0.0.0"
    xds_port: int = 15010
    secure_port: int = 15012
    http_port: int = 15014
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    push_limit: int = 25
    # File mode: the directory is followed by file events (inotify); polled every
    # poll_interval without them (0.1 s keeps edit-to-ACK near 200 ms).
    watch_events: bool = True
    poll_interval: float = 0.1
    mesh: MeshConfig = field(default_factory=MeshConfig)
    security: SecurityOptions = field(default_factory=SecurityOptions)
    # Several worker processes share the ports (``xds serve --workers``).
    reuse_port: bool = False
    kubernetes: KubernetesOptions | None = None
    """Watch a cluster instead of ``config_dir``; the CA and tokens come from it too."""
    max_connection_age: float = 1800.0
    """Seconds before a gRPC connection is ended (proxies reconnect, maybe elsewhere); 0:
    never."""
    max_new_streams: float = 1000.0
    """New xDS streams accepted per second over both ports (istiod's
    PILOT_MAX_REQUESTS_PER_SECOND, whose default of 25 slows a fleet's reconnect); a
    stream waits up to 1 s for its turn, then gets RESOURCE_EXHAUSTED. 0: no limit."""
    role: Role = Role.WHOLE
    commit_socket: Path | None = None
    """The config process's Unix socket (roles CONFIG and SERVING)."""
    serving_processes: int = 0
    """How many serving processes read the commit stream (role CONFIG)."""


def default_translators(mesh: MeshConfig) -> list[Translator]:
    return [ZtunnelTranslator(), WaypointTranslator()]


@dataclass
class BoundPorts:
    xds: int = 0
    secure: int = 0
    http: int = 0


@dataclass(frozen=True)
class Preloaded:
    """The model a split server's parent read before it forked (``files.PreloadInProgress``):
    every process starts with it, shared copy-on-write."""

    mesh: MeshStore
    parsed: ParsedFiles


class ControlPlane:
    def __init__(
        self,
        options: ServeOptions,
        translators: Sequence[Translator] | None = None,
        *,
        preloaded: Preloaded | None = None,
    ) -> None:
        self.options = options
        self.role = options.role
        self.mesh = preloaded.mesh if preloaded is not None else MeshStore(options.mesh)
        self._preloaded = preloaded is not None
        self.store = ConfigStore()
        self.ready = Readiness()
        self._started = False
        self.connections = ConnectionRegistry()
        self.ports = BoundPorts()
        self.source: FileSource | KubernetesSource | ReplicaSource
        self.security: MeshSecurity | None = None
        self.secrets: SecretPublisher | None = None
        self.pipeline: Pipeline | None = None
        self.hub: CommitHub | None = None
        self._cluster: KubernetesSource | None = None
        self._api: KubeApi | None = None  # a serving process's own (TokenReview, CA)
        if self.role is not Role.WHOLE and options.commit_socket is None:
            raise ValueError(f"role {self.role.value} needs a commit socket")
        self._history: PushHistory
        if self.role is Role.SERVING:
            # Translation happens in the config process; this one applies its commits.
            assert options.commit_socket is not None
            self.source = replica = ReplicaSource(
                options.commit_socket,
                self.mesh,
                self.store,
                self._mesh_changed,
                on_health=self._source_health,
            )
            self._history = replica
            if options.secure_port != 0 and options.kubernetes is None:
                # The CA files were created before the processes started (see the CLI).
                self._secure(MeshSecurity.open(options.security, pods=MeshPods(self.mesh)))
        else:
            self.pipeline = self._history = Pipeline(
                self.mesh,
                self.store,
                translators if translators is not None else default_translators(options.mesh),
                debounce_after=options.debounce_after,
                debounce_max=options.debounce_max,
            )
            if self.role is Role.CONFIG:
                assert options.commit_socket is not None
                self.hub = CommitHub(options.commit_socket, self.mesh, self.store, self.pipeline)
                self.pipeline.on_published = self.hub.published
            self.source = self._config_source(options, preloaded)
        self._push_limit = asyncio.Semaphore(options.push_limit)
        # One bucket for both ports: a client cannot double its rate by using both.
        self._stream_limit = (
            StreamRateLimit(options.max_new_streams, burst=max(1, int(options.max_new_streams)))
            if options.max_new_streams > 0
            else None
        )
        self._servers: list[grpc.aio.Server] = []
        self._http: HttpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Kubernetes mode: what the leader runs (only it writes to the cluster).
        self.election: LeaderElection | None = None
        self._writers: list[Callable[[], Awaitable[None]]] = []
        self._writers_ready = asyncio.Event()
        self._waypoints: WaypointController | None = None
        self._route_status: RouteStatusWriter | None = None

    def _config_source(
        self, options: ServeOptions, preloaded: Preloaded | None
    ) -> FileSource | KubernetesSource:
        if options.kubernetes is not None:
            from xds.sources.kubernetes.source import KubernetesSource

            # The CA and the token reviewer need the API server: see start().
            self._cluster = KubernetesSource(options.kubernetes, self.mesh, self._mesh_changed)
            return self._cluster
        if options.secure_port != 0 and self.role is Role.WHOLE:
            # Loads (or on first start creates) the CA: blocking, so before serving.
            self._secure(MeshSecurity.open(options.security, pods=MeshPods(self.mesh)))
        return FileSource(
            options.config_dir or demo_directory(),
            self.mesh,
            self._mesh_changed,
            poll_interval=options.poll_interval,
            watch_events=options.watch_events,
            parsed=preloaded.parsed if preloaded is not None else None,
            loop_serves=self.role is not Role.CONFIG,
        )

    def _mesh_changed(self, changes: ChangeSet) -> None:
        if self.pipeline is not None:
            self.pipeline.changed(changes)
        else:
            metrics.count_events(changes)  # a serving process: the config process translates
        if self.hub is not None:
            self.hub.mesh_changed(changes)
        if self.secrets is not None:
            namespaces = {key.namespace for key in changes.keys if key.kind == Secret.kind}
            if namespaces:
                self.secrets.secrets_changed(namespaces)
        if self._waypoints is None and self._route_status is None:
            return
        kinds = frozenset(key.kind for key in changes.keys)  # once, for both writers
        if self._waypoints is not None:
            self._waypoints.mesh_changed(kinds)
        if self._route_status is not None:
            self._route_status.mesh_changed(kinds)

    def _secure(
        self, security: MeshSecurity, may_read_keys: KeyAccess = keys_readable_in_own_namespace
    ) -> None:
        self.security = security
        self.secrets = SecretPublisher(
            security.key_pairs,
            self.store,
            secrets_in=lambda namespace: self.mesh.objects(Secret, namespace),
            may_read_keys=may_read_keys,
        )

    async def start(self) -> None:
        """Open the ports, then sync the sources and publish; returns once ready.

        Until then xDS streams are refused with UNAVAILABLE. In Kubernetes mode the
        TLS port opens once the CA has been read from the cluster. A serving process
        opens its ports once it holds the config process's snapshot."""
        if self._cluster is not None:
            await self._start_cluster_writers(self._cluster)
        if (
            self.role is Role.CONFIG
            and self.options.kubernetes is not None
            and self.options.secure_port != 0
        ):
            await self._secure_from_cluster(self.options.kubernetes)  # the root's publisher
        if self.role is Role.WHOLE:
            await self._open_ports()
        fork = self.role is Role.CONFIG and usable_cpus() > 1
        if fork and self._preloaded:
            # The children translate the preloaded model while the source takes its
            # first look at the files (a change found there starts them again).
            assert self.pipeline is not None
            self.pipeline.fork_ahead()
        source = asyncio.create_task(self._run_source(), name="source")
        self._tasks.append(source)
        synced = asyncio.create_task(self.source.synced.wait())
        done, _ = await asyncio.wait({synced, source}, return_when=asyncio.FIRST_COMPLETED)
        if source in done:
            synced.cancel()
            source.result()  # re-raise why the source died
        if self.hub is not None:
            await self.hub.start()
            # The serving processes take the model now and unpickle it while this
            # process translates (~0.4 s of a 10k-pod mesh's start).
            await self.hub.settled(self.options.serving_processes, within=1.0)
        if self.pipeline is not None:
            # A config process has no gRPC object or busy thread to trip a fork: its
            # translators' first builds run side by side, one per core.
            self.pipeline.rebuild(None, fork=fork)
            # Changes that arrived while syncing are covered by this full build, so
            # the debouncer must not translate them a second time.
            self.pipeline.debouncer.discard_pending()
            self._tasks.append(asyncio.create_task(self.pipeline.run(), name="pipeline"))
            if self.pipeline.cold:
                self._tasks.append(asyncio.create_task(self._warm(), name="warm"))
        # A serving process whose config process's source has failed since the snapshot
        # stays unready until it has synced again (``_source_health``).
        if not isinstance(self.source, ReplicaSource) or self.source.source_synced:
            self.ready.set()
        if self.role is Role.SERVING:
            # Only now: the kernel spreads connections over every process listening on
            # a port (SO_REUSEPORT), so one still waiting for its snapshot would refuse
            # streams, and fail /ready, that its siblings would serve. Ready before they
            # open, for the same reason: each port opens able to serve (the TLS one once
            # its CA is read), but the xDS port opens first, and streams it took while
            # the CA was read from the cluster were refused (UNAVAILABLE, not synced).
            await self._open_ports()
        self._writers_ready.set()
        self._started = True
        trimmer = HeapTrimmer.for_this_process()
        if trimmer is not None:
            self._tasks.append(asyncio.create_task(trimmer.run(), name="heap-trim"))
        log.info(
            "ready",
            extra={
                "role": self.role.value,
                "objects": len(self.mesh),
                "scopes": len(self.store.scopes()),
                "xds_port": self.ports.xds,
                "secure_port": self.ports.secure,
                "http_port": self.ports.http,
            },
        )

    async def _warm(self) -> None:
        """The translators whose first build was forked get one of their own, once the
        first commit is out (this long synchronous step would hold its writes back)."""
        assert self.pipeline is not None
        if self.hub is not None:
            await self.hub.settled(self.options.serving_processes, within=1.0)
        try:
            self.pipeline.warm()
        except Exception:
            # As a failed rebuild: the last good resources stay published, and the next
            # change gives the cold translators their full build.
            log.exception("warming the forked translators failed")

    async def _open_ports(self) -> None:
        await self._start_plaintext()
        if self.options.kubernetes is not None and self.options.secure_port != 0:
            await self._secure_from_cluster(self.options.kubernetes)
        if self.security is not None and self.secrets is not None:
            await self._start_secure(self.security, self.secrets)
        await self._start_http()

    async def _run_source(self) -> None:
        """The config source, supervised: a failure before the first sync fails the start;
        a later one makes us not ready (/ready 503, health NOT_SERVING, new streams
        refused) while the source is started again with backoff, and ready once it has
        synced again. Streams already open keep the last good config meanwhile."""
        failures = 0
        while True:
            running = asyncio.create_task(self.source.run())
            if failures:
                synced = asyncio.create_task(self.source.synced.wait())
                await asyncio.wait({running, synced}, return_when=asyncio.FIRST_COMPLETED)
                synced.cancel()
                if self.source.synced.is_set() and not running.done():
                    log.info("config source recovered; ready again", extra={"failures": failures})
                    self._source_health(True)
                    failures = 0
            try:
                await running
                return
            except asyncio.CancelledError:
                running.cancel()
                raise
            except Exception as error:
                if not self.ready.is_set() and not failures:
                    raise  # never synced: start() reports it
                failures += 1
                self._source_health(False)
                SOURCE_FAILURES.inc()
                log.error(
                    "config source failed; not ready until it has synced again",
                    exc_info=error,
                    extra={"reason": f"{type(error).__name__}: {error}", "failures": failures},
                )
                self.source.synced.clear()
                await asyncio.sleep(min(30.0, 0.5 * 2 ** (failures - 1)))

    def _source_health(self, synced: bool) -> None:
        """The source (or, in a serving process, the config process's) failed or synced
        again: ready follows it, in every process."""
        if self.hub is not None:
            self.hub.source_health(synced)
        if self.role is Role.SERVING and not synced:
            SOURCE_FAILURES.inc()  # counted where it can be scraped
        if not self._started:
            return  # start() decides
        if synced:
            self.ready.set()
        else:
            self.ready.clear()

    async def _secure_from_cluster(self, cluster: KubernetesOptions) -> None:
        """Kubernetes mode: the CA from its Secret, tokens checked by TokenReview, and the
        root published as the ``istio-ca-root-cert`` ConfigMap of every namespace.

        Only the leader may create the CA Secret, and only a process that watches the
        cluster publishes the root: a serving process waits for the Secret."""
        from xds.sources.kubernetes.api import connect
        from xds.sources.kubernetes.ca_secret import load_cluster_ca
        from xds.sources.kubernetes.root_cert import RootCertPublisher
        from xds.sources.kubernetes.secret_access import KubeSecretAccess
        from xds.sources.kubernetes.tokenreview import KubeTokenReviewer

        options = self.options.security
        if self._cluster is not None:
            api = await self._cluster.connect()
            may_create = self.election.leading if self.election is not None else None
        else:
            api = self._api = await connect(cluster.cluster)
            may_create = asyncio.Event()  # never set: the config process's leader creates it
        material, where = await _retrying(
            "load the CA",
            lambda: load_cluster_ca(
                api,
                options.system_namespace,
                key_algorithm=options.key_algorithm,
                organization=options.trust_domain,
                may_create=may_create,
            ),
        )
        if self.role is Role.CONFIG:
            self._writers.append(RootCertPublisher(api, lambda: material.root_pem).run)
            return
        pods = MeshPods(self.mesh)
        reviewer = KubeTokenReviewer(
            api, cluster_id=self.options.mesh.cluster_id, pod_node=pods.node_of
        )
        authenticator = KubeTokenAuthenticator(
            reviewer, trust_domain=options.trust_domain, audiences=options.token_audiences
        )
        security = MeshSecurity.assemble(options, material, authenticator, pods=pods)
        self._secure(security, KubeSecretAccess(api).may_read_keys)
        log.info("CA ready", extra={"source": where, "root": security.ca.root_fingerprint})
        if self._cluster is not None:
            self._writers.append(RootCertPublisher(api, lambda: security.ca.root_pem).run)

    async def _start_cluster_writers(self, source: KubernetesSource) -> None:
        """Leader election, and the writers the leader runs once we are ready."""
        from xds.sources.kubernetes.leader import LeaderElection
        from xds.sources.kubernetes.waypoints.controller import WaypointController
        from xds.sources.kubernetes.waypoints.objects import DEFAULT_ENVOY_IMAGE, WaypointSettings
        from xds.sources.kubernetes.waypoints.route_writer import RouteStatusWriter

        options = source.options
        api = await source.connect()
        if options.manage_waypoints:
            mesh = self.options.mesh
            self._waypoints = WaypointController(
                api,
                WaypointSettings.from_mesh(
                    mesh,
                    self.options.security.system_namespace,
                    options.waypoint_image or DEFAULT_ENVOY_IMAGE,
                ),
                attached_routes=MeshRoutes(self.mesh).attached,
                backoff=options.backoff,
            )
            self._route_status = RouteStatusWriter(
                api, self.mesh, domain_suffix=mesh.domain_suffix, backoff=options.backoff
            )
            self._writers += [self._waypoints.run, self._route_status.run]
        if options.lease is None:
            self._tasks.append(asyncio.create_task(self._lead(), name="cluster-writers"))
            return
        self.election = LeaderElection(
            api, self.options.security.system_namespace, timing=options.lease
        )
        self._tasks.append(asyncio.create_task(self.election.run(self._lead), name="election"))

    async def _lead(self) -> None:
        await self._writers_ready.wait()
        await asyncio.gather(*(writer() for writer in self._writers))

    async def _start_plaintext(self) -> None:
        if self.options.xds_port != 0:
            plaintext = AdsService(
                self.store,
                plaintext_binder(),
                ready=self.ready,
                connections=self.connections,
                observer=AdsMetrics(),
                push_limit=self._push_limit,
                debug=debug_types(self._debug_parts()),
                control_plane=control_plane_identifier(),
                stream_limit=self._stream_limit,
            )
            # No credentials on this port: client status only for loopback callers.
            status = CsdsService(self.connections, authorize=loopback_callers)
            server, health = build_server(
                [plaintext.handler(), status.handler()],
                [ADS_SERVICE, CSDS_SERVICE],
                reuse_port=self.options.reuse_port,
                max_connection_age=self.options.max_connection_age,
            )
            self.ports.xds = _bind(server, self.options.listen_host, self.options.xds_port)
            await server.start()
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(health.follow(self.ready), name="health"))

    async def _start_secure(self, security: MeshSecurity, secrets: SecretPublisher) -> None:
        """The TLS port: ADS and the CA, every call authenticated by bearer token."""

        async def authenticate(context: grpc.aio.ServicerContext) -> Caller:
            try:
                return await security.authenticator.authenticate(
                    context.invocation_metadata() or (), context.peer()
                )
            except AuthenticationError as e:
                raise Unauthenticated(str(e)) from None

        ads = AdsService(
            self.store,
            secure_binder(self.mesh, secrets, self.options.security.system_namespace),
            ready=self.ready,
            connections=self.connections,
            authenticate=authenticate,
            observer=AdsMetrics(),
            push_limit=self._push_limit,
            debug=debug_types(self._debug_parts()),
            control_plane=control_plane_identifier(),
            stream_limit=self._stream_limit,
        )
        ca = CertificateService(security.signer, security.authenticator, security.authorizer)
        status = CsdsService(
            self.connections,
            authorize=system_namespace_callers(
                authenticate, self.options.security.system_namespace
            ),
        )
        server, health = build_server(
            [ads.handler(), ca.handler(), status.handler()],
            [ADS_SERVICE, CA_SERVICE, CSDS_SERVICE],
            reuse_port=self.options.reuse_port,
            max_connection_age=self.options.max_connection_age,
        )
        self.ports.secure = _bind(
            server,
            self.options.listen_host,
            self.options.secure_port,
            security.server_credentials(),
        )
        await server.start()
        self._servers.append(server)
        self._tasks += [
            asyncio.create_task(health.follow(self.ready), name="health-tls"),
            asyncio.create_task(secrets.run(), name="sds-rotation"),
            asyncio.create_task(security.watch_ca(secrets.ca_changed), name="ca"),
        ]

    def _debug_parts(self) -> DebugParts:
        return DebugParts(
            ready=self.ready,
            connections=self.connections,
            store=self.store,
            mesh=self.mesh,
            history=self._history,
            system_namespace=self.options.security.system_namespace,
            authenticator=self.security.authenticator if self.security is not None else None,
        )

    async def _start_http(self) -> None:
        if self.options.http_port == 0:
            return
        # Every /debug route checks its caller itself (loopback or bearer token).
        endpoints = debug_endpoints(self._debug_parts())
        self._http = HttpServer(endpoints.routes(), methods=endpoints.methods())
        port = max(self.options.http_port, 0)
        try:
            self.ports.http = await self._http.start(
                self.options.listen_host, port, reuse_port=self.options.reuse_port
            )
        except OSError as error:
            raise PortUnavailable(
                f"cannot listen on {self.options.listen_host}:{port} "
                f"(HTTP): {error.strerror or error}"
            ) from None

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, end every xDS stream at once, then close everything.

        xDS streams end with the status proxies take for a clean close, so they
        reconnect (to another replica, or to us when we are back) without
        backing off. Unary calls in flight (CSRs) get up to ``grace`` seconds.
        """
        log.info("shutting down", extra={"streams": len(self.connections)})
        self.ready.clear()
        self.connections.close_all()
        await asyncio.gather(*(server.stop(grace) for server in self._servers))
        if self._http is not None:
            await self._http.close()
        await cancel_all(self._tasks)
        if self.security is not None:
            self.security.close()
        if self.hub is not None:
            await self.hub.close()
        if self._cluster is not None:
            await self._cluster.close()
        if self._api is not None:
            await self._api.close()
        log.info("stopped")


class PortUnavailable(RuntimeError):
    """A port could not be bound (in use, or not permitted)."""


def _bind(
    server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None = None
) -> int:
    """Add ``host:port`` (0 or -1: any free port) to ``server``; returns the port bound."""
    address = f"{host}:{max(port, 0)}"
    try:
        if credentials is None:
            return int(server.add_insecure_port(address))
        return int(server.add_secure_port(address, credentials))
    except RuntimeError:
        raise PortUnavailable(
            f"cannot listen on {address}: the port is in use, or not permitted"
        ) from None


class MeshRoutes:
    """Answers the waypoint controller's ``attachedRoutes`` question from the model."""

    def __init__(self, mesh: MeshStore) -> None:
        self._mesh = mesh

    def attached(self, namespace: str, name: str) -> int:
        routes: list[HTTPRoute | GRPCRoute] = [
            *self._mesh.objects(HTTPRoute),
            *self._mesh.objects(GRPCRoute),
        ]
        return sum(
            1
            for route in routes
            if any(
                ref.group == GATEWAY_GROUP
                and ref.kind == "Gateway"
                and ref.name == name
                and ref.namespace == namespace
                for ref in route.parent_refs
            )
        )


class MeshPods:
    """Answers the CA's impersonation question from the mesh model."""

    def __init__(self, mesh: MeshStore) -> None:
        self._mesh = mesh

    def node_of(self, namespace: str, name: str, uid: str) -> str | None:
        """The node of pod ``namespace/name``, if it is that pod (same uid) and placed."""
        pod = self._mesh.get(Pod, namespace, name)
        if pod is None or (uid and pod.meta.uid != uid):
            return None
        return pod.node_name or None

    def has_pod(self, identity: Identity, node: str) -> bool:
        return any(
            pod.node_name == node
            and pod.service_account == identity.service_account
            and pod.phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED)
            for pod in self._mesh.objects(Pod, identity.namespace)
        )


async def _retrying(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt`` until the API server answers; what it refuses (403, a bad Secret) is
    final, and raised."""
    from xds.sources.kubernetes.api import ApiError
    from xds.sources.kubernetes.reflector import Backoff

    backoff = Backoff(base=0.5, ceiling=10.0)
    failures = 0
    while True:
        try:
            return await attempt()
        except ApiError as error:
            if error.status not in (0, 429) and error.status < 500:
                raise RuntimeError(f"cannot {what}: {error}") from None
            failures += 1
            log.warning("cannot %s yet; retrying", what, extra={"reason": str(error)})
            await asyncio.sleep(backoff.delay(failures))


def demo_directory() -> Path:
    from xds.sources.demo import demo_directory as bundled

    return bundled()
