"""What the proxies talk to: our server (started here or already running) or the floor.

Each subject gives an ``Endpoint`` for the proxies, the pids to sample, and a
way to apply a change: ours through the config directory, the floor through
its pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from loadtest import floor
from loadtest.churn import Change, Expect
from loadtest.kubecluster import MeshCluster
from loadtest.meshfiles import MeshFiles
from loadtest.pinning import pin
from loadtest.worker import Endpoint
from xds.cpus import usable_cpus
from xds.plane.workers import workers_for

Mesh = MeshFiles | MeshCluster
"""Where the scenario's mesh lives: a config directory, or an API server."""

REPO = Path(__file__).resolve().parents[1]
TRUST_DOMAIN = "cluster.local"


class StartError(RuntimeError):
    pass


class Subject(Protocol):
    label: str
    endpoint: Endpoint

    @property
    def pids(self) -> list[int]: ...

    def apply(self, change: Change) -> float:
        """Make the change; returns when it became visible to the subject (monotonic)."""

    def metrics(self) -> dict[str, float]:
        """The subject's /metrics, summed over label sets (empty if it has none)."""

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Tls:
    """The CA and the bearer tokens of the TLS port."""

    ca_dir: Path
    tokens_file: Path
    root_pem: bytes
    tokens: dict[str, str]

    @classmethod
    def prepare(cls, ca_dir: Path, accounts: Sequence[str], *, create: bool) -> Tls:
        """Grant a token to each account (creating the CA first if asked)."""
        from xds.security.ca import KeyAlgorithm
        from xds.security.ca_files import CaDirectory
        from xds.security.identity import Identity
        from xds.security.tokens import TOKENS_FILE, TokenGrant, add_grant

        directory = CaDirectory(ca_dir)
        if create:
            directory.create(KeyAlgorithm.EC_P256, organization=TRUST_DOMAIN)
        tokens_file = ca_dir / TOKENS_FILE
        tokens = {
            account: add_grant(tokens_file, TokenGrant(Identity.from_account(account)))
            for account in sorted(set(accounts))
        }
        return cls(ca_dir, tokens_file, directory.root_cert_path.read_bytes(), tokens)


@dataclass
class ServeOptions:
    """How to run ``xds serve``; ``workers`` and ``extra_args`` are passed through."""

    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "xds", "serve"])
    cwd: Path = REPO
    """Where the command runs (``-m xds`` imports the ``xds`` found there)."""
    workers: int | None = None
    """Serving processes (``--workers``); 0: ``--single-process``; None: the server's
    default (one per CPU it may use)."""
    poll_interval: float = 0.1
    debounce_after: float = 0.1
    debounce_max: float = 10.0
    log_level: str = "info"
    extra_args: list[str] = field(default_factory=list)
    cpus: frozenset[int] | None = None
    """Pin the server (and the workers it forks) to these CPUs."""

    def serving_processes(self) -> int:
        """How many processes hold streams (and answer scrapes), as ``xds serve`` decides."""
        if self.workers is not None:
            return max(1, self.workers)
        usable = usable_cpus()
        return max(1, workers_for(min(len(self.cpus), usable) if self.cpus else usable))


class XdsServer:
    """``xds serve`` as a subprocess on free loopback ports, reading ``files`` (a config
    directory, or with ``--kubernetes`` the API server they were loaded into)."""

    label = "server"

    def __init__(self, files: Mesh, options: ServeOptions, log_path: Path, tls: Tls | None) -> None:
        self._files = files
        self._options = options
        self._log_path = log_path
        self.tls = tls
        self.xds_port = free_port()
        self.http_port = free_port()
        self.secure_port = free_port() if tls is not None else 0
        port = self.secure_port if tls is not None else self.xds_port
        self.endpoint = Endpoint(
            f"127.0.0.1:{port}",
            tls.root_pem if tls else None,
            tokens=dict(tls.tokens) if tls else {},
        )
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        o = self._options
        if isinstance(self._files, MeshCluster):
            # The scenario writes its Gateways' addresses itself (no kubelet runs their pods):
            # a waypoint controller rewriting them would add churn the scenario did not ask for.
            source = [
                "--kubernetes",
                "--kubeconfig",
                str(self._files.client.kubeconfig),
                "--no-waypoint-controller",
            ]
        else:
            source = [
                "--config",
                str(self._files.directory),
                "--poll-interval",
                str(o.poll_interval),
            ]
        args = [
            *o.command,
            *source,
            "--listen-address",
            "127.0.0.1",
            "--xds-port",
            str(self.xds_port),
            "--secure-port",
            str(self.secure_port),
            "--http-port",
            str(self.http_port),
            "--debounce-after",
            str(o.debounce_after),
            "--debounce-max",
            str(o.debounce_max),
            "--log-level",
            o.log_level,
        ]
        if o.workers == 0:
            args.append("--single-process")
        elif o.workers is not None:
            args += ["--workers", str(o.workers)]
        if self.tls is not None:
            args += ["--ca-dir", str(self.tls.ca_dir), "--tokens-file", str(self.tls.tokens_file)]
        return args + o.extra_args

    def start(self, timeout: float = 120.0) -> float:
        """Start and wait until every worker answers /ready; returns the seconds it took."""
        env = dict(os.environ, PYTHONPATH=str(self._options.cwd))
        with self._log_path.open("wb") as log:
            started = time.monotonic()
            cpus = self._options.cpus
            self._process = subprocess.Popen(
                self.command(),
                cwd=self._options.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: pin(cpus)) if cpus else None,
            )
        needed = 2 * self._options.serving_processes()  # SO_REUSEPORT: any may answer
        streak = 0
        while streak < needed:
            if self._process.poll() is not None:
                raise StartError(
                    f"xds serve exited with {self._process.returncode}:\n" + self.log_tail()
                )
            if time.monotonic() - started > timeout:
                raise StartError(f"xds serve not ready after {timeout:.0f} s:\n" + self.log_tail())
            streak = streak + 1 if http_ready(self.http_port) else 0
            if streak == 0:
                time.sleep(0.02)
        return time.monotonic() - started

    @property
    def pids(self) -> list[int]:
        return [] if self._process is None else [self._process.pid]

    def apply(self, change: Change) -> float:
        if change.manifest is None:
            return self._files.delete(change.ref)
        return self._files.put(change.manifest)

    def metrics(self) -> dict[str, float]:
        return scrape(self.http_port)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


class ExternalServer:
    """A server someone else started; changes go to ``files`` if its directory was given."""

    label = "server"

    def __init__(
        self, endpoint: Endpoint, files: Mesh | None, http_port: int | None, pids: Sequence[int]
    ) -> None:
        self.endpoint = endpoint
        self._files = files
        self.http_port = http_port
        self._pids = list(pids)

    @property
    def pids(self) -> list[int]:
        return list(self._pids)

    def apply(self, change: Change) -> float:
        if self._files is None:
            raise StartError(
                "changes need --config-dir (the directory the server reads) "
                "or --kubeconfig (the cluster it watches)"
            )
        if change.manifest is None:
            return self._files.delete(change.ref)
        return self._files.put(change.manifest)

    def metrics(self) -> dict[str, float]:
        return {} if self.http_port is None else scrape(self.http_port)

    def stop(self) -> None:
        pass


class FloorServer:
    """The floor (``loadtest.floor``) in its own process."""

    label = "floor"

    def __init__(
        self,
        setup: floor.FloorSetup,
        tls: Tls | None,
        timeout: float = 180.0,
        cpus: frozenset[int] | None = None,
    ) -> None:
        context = mp.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=floor.run, args=(setup, child, cpus), daemon=True, name="loadtest-floor"
        )
        self._process.start()
        child.close()
        deadline = time.monotonic() + timeout
        while not self._pipe.poll(0.2):
            if not self._process.is_alive() or time.monotonic() > deadline:
                self._process.terminate()
                raise StartError(
                    f"the floor server did not start (exit code {self._process.exitcode})"
                )
        _, port = self._pipe.recv()
        self.endpoint = Endpoint(
            f"127.0.0.1:{port}",
            tls.root_pem if tls else None,
            tokens=dict(tls.tokens) if tls else {},
        )

    @property
    def pids(self) -> list[int]:
        return [self._process.pid] if self._process.pid is not None else []

    def apply(self, change: Change) -> float:
        applied_at = time.monotonic()
        self._pipe.send(
            floor.Apply(
                [floor.FloorChange(change.type_url, change.key, change.expect is Expect.REMOVE)]
            )
        )
        return applied_at

    def metrics(self) -> dict[str, float]:
        return {}

    def pushes(self) -> list[floor.FloorPush]:
        self._pipe.send(floor.GetPushes())
        reply: list[floor.FloorPush] = _receive(self._pipe, 30)
        return reply

    def stop(self) -> None:
        if self._process.is_alive():
            self._pipe.send(floor.Stop())
            self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def _receive(pipe: Connection, timeout: float) -> Any:
    if not pipe.poll(timeout):
        raise StartError("no answer from the floor server")
    return pipe.recv()


def http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape(port: int) -> dict[str, float]:
    """/metrics as ``name`` -> value summed over label sets (empty if unreachable).

    Histogram ``_sum``/``_count`` series come out as their own names; with
    ``--workers`` each scrape reaches one worker (SO_REUSEPORT)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, _, value = match.groups()
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals
