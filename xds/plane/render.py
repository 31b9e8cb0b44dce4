"""``xds render``: what a given proxy would receive, without starting a server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xds.model.mesh import MeshConfig, MeshStore
from xds.plane.pipeline import Pipeline
from xds.plane.scopes import GATEWAY_NAME_LABEL, plaintext_binder
from xds.resources import decode
from xds.serving.ads import Binding
from xds.serving.debug import render_scope
from xds.serving.node import ProxyType, parse_node_id
from xds.serving.store import ConfigStore
from xds.sources.files import load_directory

if TYPE_CHECKING:
    from xds.sources.kubernetes.source import KubernetesOptions


class InvalidManifests(Exception):
    """Some manifests could not be used (each was reported); nothing was rendered."""


def render(
    config_dir: Path | None,
    node_id: str,
    *,
    gateway: str | None = None,
    mesh_config: MeshConfig | None = None,
    kubernetes: KubernetesOptions | None = None,
    keep_going: bool = False,
    report: Callable[[str], None] = lambda line: None,
) -> dict[str, list[Any]]:
    """The resources ``node_id`` would get from the mesh in ``config_dir`` (default: the
    demo mesh) or, with ``kubernetes``, from the cluster.

    Each invalid manifest (file, document, object, field, reason) goes to ``report``;
    then ``InvalidManifests`` is raised, unless ``keep_going`` renders the rest as the
    server would serve it."""
    rendered = render_nodes(
        config_dir,
        {node_id: gateway},
        mesh_config=mesh_config,
        kubernetes=kubernetes,
        keep_going=keep_going,
        report=report,
    )
    return rendered[node_id]


def render_nodes(
    config_dir: Path | None,
    nodes: Mapping[str, str | None],
    *,
    mesh_config: MeshConfig | None = None,
    kubernetes: KubernetesOptions | None = None,
    keep_going: bool = False,
    report: Callable[[str], None] = lambda line: None,
) -> dict[str, dict[str, list[Any]]]:
    """``render`` for several proxies (node id -> its Gateway, or None to take it from the
    pod name), reading and translating the mesh once."""
    from xds.plane.app import default_translators, demo_directory

    scopes = {node_id: _scope(node_id, gateway) for node_id, gateway in nodes.items()}
    config = mesh_config or MeshConfig()
    mesh = MeshStore(config)
    if kubernetes is not None:
        from xds.sources.kubernetes.source import load_once

        asyncio.run(load_once(kubernetes, mesh))
    else:
        objects, errors = load_directory(config_dir or demo_directory())
        for error in errors:
            report(str(error))
        if errors and not keep_going:
            raise InvalidManifests(
                f"{len(errors)} invalid manifest(s); nothing rendered "
                "(--keep-going renders the rest, as the server serves it)"
            )
        mesh.apply(objects)
    store = ConfigStore()
    Pipeline(mesh, store, default_translators(config)).rebuild(None)
    return {node_id: render_scope(store, scope, decode) for node_id, scope in scopes.items()}


def _scope(node_id: str, gateway: str | None) -> str:
    """The scope the plaintext port would bind ``node_id`` to."""
    node = parse_node_id(node_id)
    if node.type in (ProxyType.WAYPOINT, ProxyType.ROUTER):
        # A waypoint pod is "<gateway>-<replicaset hash>-<pod hash>" by default.
        name = gateway or node.pod_name.rsplit("-", 2)[0]
        node = parse_node_id(node_id, {"LABELS": {GATEWAY_NAME_LABEL: name}})

    async def bind() -> Binding:
        return await plaintext_binder()(node, None)

    return asyncio.run(bind()).scope
