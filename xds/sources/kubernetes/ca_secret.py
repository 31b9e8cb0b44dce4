"""The CA's key material in Kubernetes mode, where istiod keeps it.

1. A plug-in CA: Secret ``cacerts`` in the control plane's namespace, with the
   cacerts files (``ca-cert.pem``, ``ca-key.pem``, ``root-cert.pem``,
   ``cert-chain.pem``), or the kubernetes.io/tls layout (``tls.crt``,
   ``tls.key``, ``ca.crt``).
2. Otherwise the self-signed root in Secret ``istio-ca-secret`` (type
   ``istio.io/ca-root``): read if it exists; if not, generated and created.
   Replicas starting together race safely: the create is create-if-absent, and
   the loser reads back the winner's root. It is never replaced. With leader
   election only the leader creates it; the other replicas wait for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final

from xds.security.ca import KeyAlgorithm, SigningMaterial, generate_root, key_to_pem, to_pem
from xds.security.ca_files import CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, material_from_pems
from xds.sources.kubernetes.api import ApiError, KubeApi

log = logging.getLogger("xds.kube")

PLUGIN_SECRET: Final = "cacerts"
SELF_SIGNED_SECRET: Final = "istio-ca-secret"
SELF_SIGNED_TYPE: Final = "istio.io/ca-root"
# kubernetes.io/tls secrets name the same things differently.
_TLS_LAYOUT: Final = {"tls.crt": CA_CERT, "tls.key": CA_KEY, "ca.crt": ROOT_CERT}


def _secret_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def _pems(secret: Mapping[str, Any]) -> dict[str, bytes]:
    pems: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        name = _TLS_LAYOUT.get(key, key)
        if name not in pems or key == name:  # the cacerts name wins over the tls one
            pems[name] = base64.b64decode(value)
    return pems


async def load_cluster_ca(
    api: KubeApi,
    namespace: str,
    *,
    key_algorithm: KeyAlgorithm,
    organization: str,
    may_create: asyncio.Event | None = None,
    poll_interval: float = 1.0,
) -> tuple[SigningMaterial, str]:
    """The signing material and a description of where it came from.

    ``may_create``: set while this replica may create the self-signed root (it
    leads); until then a missing Secret is read again every ``poll_interval``.
    ``None`` creates at once. Raises ``CaError`` for a secret that is unusable
    (named, with the key and why), ``ApiError`` when the API server cannot be asked."""
    where = f"Secret {namespace}/{SELF_SIGNED_SECRET}"
    waiting = False
    while True:
        plugin = await _read(api, namespace, PLUGIN_SECRET)
        if plugin is not None:
            return plugin, f"plug-in CA from Secret {namespace}/{PLUGIN_SECRET}"
        existing = await _read(api, namespace, SELF_SIGNED_SECRET)
        if existing is not None:
            return existing, f"self-signed root from {where}"
        if may_create is None or may_create.is_set():
            break
        if not waiting:
            waiting = True
            log.info(
                "no CA Secret yet; waiting for the leader to create it", extra={"secret": where}
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_interval):
                await may_create.wait()

    key = key_algorithm.generate()
    root = generate_root(key, organization=organization)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SELF_SIGNED_TYPE,
        "metadata": {"name": SELF_SIGNED_SECRET, "namespace": namespace},
        "data": {
            CA_CERT: _b64(to_pem(root).encode()),
            CA_KEY: _b64(key_to_pem(key)),
            ROOT_CERT: "",
            CERT_CHAIN: "",
        },
    }
    try:
        await api.create(_secret_path(namespace), body)
    except ApiError as error:
        if error.status != 409:
            raise
        # Another replica created it first: use its root, not ours.
        winner = await _read(api, namespace, SELF_SIGNED_SECRET)
        if winner is None:
            raise
        return winner, f"self-signed root from {where} (created by another replica)"
    log.info("created a self-signed root CA", extra={"secret": where})
    return SigningMaterial(key, root, (), (root,)), f"self-signed root created in {where}"


async def _read(api: KubeApi, namespace: str, name: str) -> SigningMaterial | None:
    """The CA in Secret ``namespace/name``; ``None`` when there is no such Secret."""
    try:
        secret = await api.get(_secret_path(namespace, name))
    except ApiError as error:
        if error.not_found:
            return None
        raise
    where = f"Secret {namespace}/{name}"
    return material_from_pems(_pems(secret), lambda key: f"{where} key {key}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
