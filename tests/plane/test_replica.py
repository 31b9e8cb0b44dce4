"""A config process and a serving process over a real Unix socket (in one event loop):
file edits reach the serving process's streams; while the config process is away the
streams keep the last config; a restarted config process's snapshot reaches them as a
diff."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import urllib.request
from pathlib import Path

import pytest

from tests import builders
from tests.builders import model
from xds.client import DeltaClient
from xds.model.core import Pod
from xds.model.mesh import MeshStore
from xds.plane import commits
from xds.plane.app import ControlPlane, Role
from xds.plane.hub import CommitHub
from xds.plane.pipeline import Pipeline
from xds.serving.store import ConfigStore
from xds.type_urls import ADDRESS, AUTHORIZATION

from ..conftest import running_control_plane
from ..e2e.support import PRODUCTPAGE, drain, edit, ztunnel
from ..helpers import wait_until


async def connect_ztunnel(port: int) -> DeltaClient:
    client = ztunnel(port)
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    return client


async def push_status(port: int) -> dict[str, object]:
    def get() -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/debug/push_status") as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    return await asyncio.to_thread(get)  # the server answers on this event loop


async def test_edits_reach_a_serving_process_through_the_commit_stream(
    demo_copy: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "commits.sock"
    async with (
        running_control_plane(demo_copy, role=Role.CONFIG, commit_socket=socket) as config,
        running_control_plane(demo_copy, role=Role.SERVING, commit_socket=socket) as serving,
    ):
        assert config.ports.xds == config.ports.http == 0  # the config process has no ports
        assert serving.pipeline is None  # ... and the serving process translates nothing
        client = await connect_ztunnel(serving.ports.xds)
        addresses = await client.next()
        assert addresses.type_url == ADDRESS and PRODUCTPAGE in {
            r.name for r in addresses.resources
        }
        assert (await client.next()).type_url == AUTHORIZATION
        await drain(client)
        assert config.pipeline is not None
        await wait_until(lambda: not config.pipeline.cold)  # a forked first build warmed up
        rebuilds = config.pipeline.rebuilds

        edit(demo_copy / "20-productpage.yaml", "podIP: 10.244.1.10", "podIP: 10.244.1.99")
        edit(demo_copy / "20-productpage.yaml", "- ip: 10.244.1.10", "- ip: 10.244.1.99")
        [push] = await drain(client)
        assert [r.name for r in push.resources] == [PRODUCTPAGE]
        # The serving process's model replica and push history follow too.
        [pod] = serving.mesh.pods_by_ip(ipaddress.ip_address("10.244.1.99"))
        assert pod.meta.name.startswith("productpage")
        status = await push_status(serving.ports.http)
        assert status["rebuilds"] == config.pipeline.rebuilds == rebuilds + 1
        assert status["full"] is False and status["kinds"] == ["Pod"]
        await client.close()


async def test_streams_keep_the_last_config_while_the_config_process_is_away(
    demo_copy: Path, tmp_path: Path
) -> None:
    socket = tmp_path / "commits.sock"
    config = running_control_plane(demo_copy, role=Role.CONFIG, commit_socket=socket)
    await config.__aenter__()
    async with running_control_plane(demo_copy, role=Role.SERVING, commit_socket=socket) as serving:
        await config.__aexit__(None, None, None)
        client = await connect_ztunnel(serving.ports.xds)
        full = await client.next()
        await drain(client)
        assert serving.ready.is_set()

        # Config process gone: edits wait, the stream stays.
        edit(demo_copy / "20-productpage.yaml", "podIP: 10.244.1.10", "podIP: 10.244.1.99")
        edit(demo_copy / "20-productpage.yaml", "- ip: 10.244.1.10", "- ip: 10.244.1.99")
        assert await drain(client) == []
        assert serving.ready.is_set()

        # A new config process: its snapshot is applied as a diff.
        async with running_control_plane(demo_copy, role=Role.CONFIG, commit_socket=socket):
            pushes = await drain(client, quiet=1.0)
        assert [r.name for p in pushes for r in p.resources] == [PRODUCTPAGE]
        assert len(full.resources) > 10
        await wait_until(lambda: serving.ready.is_set())
        await client.close()


async def test_a_failing_source_makes_the_serving_processes_unready_too(
    demo_copy: Path, tmp_path: Path, failing_disk: asyncio.Event
) -> None:
    failing = failing_disk  # only the config process reads the directory
    socket = tmp_path / "commits.sock"
    async with (
        running_control_plane(demo_copy, role=Role.CONFIG, commit_socket=socket),
        running_control_plane(demo_copy, role=Role.SERVING, commit_socket=socket) as serving,
    ):
        assert serving.ready.is_set()
        failing.set()
        await wait_until(lambda: not serving.ready.is_set(), within=5)
        # A serving process that starts meanwhile syncs, but is not ready either.
        async with running_control_plane(
            demo_copy, role=Role.SERVING, commit_socket=socket
        ) as late:
            assert late.mesh.objects(Pod) and not late.ready.is_set()
            failing.clear()
            await wait_until(lambda: serving.ready.is_set() and late.ready.is_set(), within=10)


async def as_serving_process(
    path: Path, hello: commits.Hello | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the commit stream that says what a serving process says first."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(commits.encode(hello or commits.Hello()))
    return reader, writer


async def next_message(reader: asyncio.StreamReader, decoder: commits.Decoder) -> commits.Message:
    while True:
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, "the commit stream ended"
        for message in decoder.feed(data):
            return message


async def test_a_serving_process_that_stops_reading_is_dropped_and_resyncs(
    tmp_path: Path,
) -> None:
    mesh, store = MeshStore(), ConfigStore()
    path = tmp_path / "commits.sock"
    hub = CommitHub(path, mesh, store, Pipeline(mesh, store, []), max_backlog=1 << 20)
    await hub.start()
    try:
        reader, writer = await as_serving_process(path)
        assert isinstance(await next_message(reader, commits.Decoder()), commits.Snapshot)
        # It reads nothing more while large changes keep coming (~0.5 MB each).
        for batch in range(12):
            pods = [
                model(builders.pod("ns", f"p{batch}-{i}", labels={"pad": "x" * 60}), Pod)
                for i in range(2000)
            ]
            hub.mesh_changed(mesh.apply(pods))
            await asyncio.sleep(0.01)
        # It was dropped: its stream ends short of the last changes.
        received = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
                received += len(chunk)
        writer.close()
        everything = len(commits.encode(commits.MeshChanges(tuple(mesh.objects(Pod)))))
        assert 0 < received < everything
        # Back, it gets the whole model in its snapshot.
        reader, writer = await as_serving_process(path)
        fresh = await next_message(reader, commits.Decoder())
        assert isinstance(fresh, commits.Snapshot) and len(fresh.objects) == 12 * 2000
        writer.close()
    finally:
        await hub.close()


async def test_at_start_a_serving_process_gets_the_model_before_the_build(
    demo_copy: Path, tmp_path: Path
) -> None:
    """The model half as soon as it connects (it unpickles while the config process
    translates), the store half once the first build is done."""
    socket = tmp_path / "commits.sock"
    plane = running_control_plane(
        demo_copy, role=Role.CONFIG, commit_socket=socket, serving_processes=1
    )
    starting = asyncio.create_task(plane.__aenter__())
    try:
        await wait_until(socket.exists, within=10)
        reader, writer = await as_serving_process(socket)
        decoder = commits.Decoder()
        model_half = await next_message(reader, decoder)
        assert isinstance(model_half, commits.Snapshot)
        assert model_half.objects and model_half.resources is None
        config = await starting
        assert config.pipeline is not None and config.pipeline.rebuilds == 1
        store_half = await next_message(reader, decoder)
        assert isinstance(store_half, commits.Snapshot)
        assert store_half.objects is None and store_half.resources
        assert store_half.rebuilds == 1
        writer.close()
    finally:
        await plane.__aexit__(None, None, None)


async def test_the_model_is_left_out_for_a_serving_process_that_holds_it(
    tmp_path: Path,
) -> None:
    """Forked from the same parent after it read the mesh, a serving process and the
    config process hold the same model: until either changes it, snapshots leave it out."""
    mesh, store = MeshStore(), ConfigStore()
    mesh.apply([model(builders.pod("ns", f"p{i}"), Pod) for i in range(3)])
    path = tmp_path / "commits.sock"
    hub = CommitHub(path, mesh, store, Pipeline(mesh, store, []))
    forked = commits.Hello(mesh.generation)
    await hub.start()
    try:
        for hello, keeps in ((forked, True), (commits.Hello(None), False)):
            reader, writer = await as_serving_process(path, hello)
            snapshot = await next_message(reader, commits.Decoder())
            assert isinstance(snapshot, commits.Snapshot)
            assert (snapshot.objects is None) is keeps
            writer.close()
        # Once the config process's model moved on, everyone gets it.
        hub.mesh_changed(mesh.apply([model(builders.pod("ns", "p9"), Pod)]))
        reader, writer = await as_serving_process(path, forked)
        snapshot = await next_message(reader, commits.Decoder())
        assert isinstance(snapshot, commits.Snapshot) and snapshot.objects
        writer.close()
    finally:
        await hub.close()


async def test_a_serving_process_serves_the_first_stream_its_xds_port_takes(
    demo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SO_REUSEPORT the kernel hands a stream to a process as soon as its port
    listens; the rest of its start (the TLS port's CA read from the cluster) must not
    leave that stream refused while its siblings are ready."""
    socket = tmp_path / "commits.sock"
    first: list[str] = []
    start_plaintext = ControlPlane._start_plaintext

    async def then_connect(plane: ControlPlane) -> None:
        await start_plaintext(plane)
        if plane.role is Role.SERVING:
            client = await connect_ztunnel(plane.ports.xds)
            first.append((await client.next(within=5)).type_url)
            await client.close()

    monkeypatch.setattr(ControlPlane, "_start_plaintext", then_connect)
    async with (
        running_control_plane(demo_copy, role=Role.CONFIG, commit_socket=socket),
        running_control_plane(demo_copy, role=Role.SERVING, commit_socket=socket),
    ):
        assert first == [ADDRESS]
