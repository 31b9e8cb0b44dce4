"""DestinationRule ``credentialName`` through a stock Envoy waypoint that our server configures.

An egress waypoint: the client speaks plain HTTP to a ServiceEntry's address; the
waypoint originates mutual TLS to the external endpoint with the client certificate
and CA bundle of a Kubernetes Secret of its namespace (``kubernetes://partner-client``
and ``-cacert``), which our server sends it over SDS on the authenticated TLS port.
The endpoint accepts only clients its own CA signed and answers with the identity it
saw; editing the Secret changes that identity for the next connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import waypoint_harness as h
from tests.translate.waypoint import live
from tests.translate.waypoint.envoy_static import Certificates, make_pki
from tests.translate.waypoint.fixtures import gateway, meta, namespace
from xds.security.identity import Identity

from ..helpers import free_port

pytestmark = pytest.mark.envoy

NS = "egress"
WAYPOINT_ADDRESS = "127.78.0.2"
WAYPOINT_POD = "127.78.0.3"
PARTNER_VIP = "127.78.1.1"
PARTNER_ADDRESS = "127.78.3.1"  # outside the mesh: no ztunnel in front of it
PARTNER_HOST = "api.partner.test"
# The partner's own PKI (not the mesh's): it signs its server and the client
# certificate the waypoint presents.
PARTNER_IDENTITIES = {
    "server": "spiffe://partner.test/server",
    "client": "spiffe://partner.test/client/ours",
    "renewed": "spiffe://partner.test/client/renewed",
}


def credential_secret(pki: dict[str, Certificates], client: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(NS, "partner-client"),
        "type": "kubernetes.io/tls",
        "stringData": {
            "tls.crt": pki[client].cert.read_text(),
            "tls.key": pki[client].key.read_text(),
            "ca.crt": pki[client].ca.read_text(),
        },
    }


def manifests() -> list[dict[str, Any]]:
    return [
        namespace(NS),
        gateway(NS, address=WAYPOINT_ADDRESS),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": meta(NS, "partner"),
            "spec": {
                "hosts": [PARTNER_HOST],
                "addresses": [PARTNER_VIP],
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8443}],
                "location": "MESH_EXTERNAL",
                "resolution": "DNS",
                "endpoints": [{"address": PARTNER_ADDRESS}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": meta(NS, "partner"),
            "spec": {
                "host": PARTNER_HOST,
                "trafficPolicy": {"tls": {"mode": "MUTUAL", "credentialName": "partner-client"}},
            },
        },
    ]


def write_secret(config: Path, pki: dict[str, Certificates], client: str) -> None:
    temporary = config / ".secret.yaml.tmp"  # write-then-rename: never half a file
    temporary.write_text(yaml.safe_dump(credential_secret(pki, client), sort_keys=False))
    temporary.replace(config / "secret.yaml")


@dataclass
class Egress:
    config: Path
    pki: dict[str, Certificates]
    port: int  # the client ztunnel's listener for the partner's address
    waypoint: live.RunningEnvoy


@pytest.fixture(scope="module")
def egress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Egress]:
    directory = tmp_path_factory.mktemp("credentials")
    config = directory / "mesh"
    config.mkdir()
    (config / "mesh.yaml").write_text(yaml.safe_dump_all(manifests(), sort_keys=False))
    pki = make_pki(directory / "partner", PARTNER_IDENTITIES)
    write_secret(config, pki, "client")
    accounts = {name: f"{NS}/{name}" for name in ("waypoint", "sleep")}
    with h.exclusive_hbone_port(), h.LoopThread() as loop, ExitStack() as stack:
        secure = h.start_secure_plane(loop, config, directory, accounts)
        plane, ca_root = secure.plane, secure.ca_root
        stack.enter_context(
            live.http_backend(PARTNER_ADDRESS, 8443, tls=pki["server"], client_ca=pki["server"].ca)
        )
        sleep = h.issue_certificate(
            plane.ports.secure,
            ca_root.read_bytes(),
            secure.tokens["sleep"],
            directory / "certs",
            "sleep",
            Identity.from_account(f"{NS}/sleep").uri,
        )
        port = free_port()
        client = live.client_ztunnel(
            [live.Tunnel("partner", f"{PARTNER_VIP}:80", "sleep", port)],
            h.HBONE_PORT,
            Certificates(ca_root, sleep.chain, sleep.key),
            {"sleep": (sleep.chain, sleep.key)},
            waypoint_address=WAYPOINT_ADDRESS,
        )
        stack.enter_context(live.envoy("client", client, directory))
        waypoint = stack.enter_context(
            h.waypoint_envoy(
                secure,
                directory,
                namespace=NS,
                pod_name="waypoint-0",
                pod_ip=WAYPOINT_POD,
                delta=True,
            )
        )
        yield Egress(config, pki, port, waypoint)


def partner_saw(port: int) -> list[str] | None:
    """The client identity the partner's server saw, or None if the request failed."""
    try:
        reply = live.get(port, "/v1/orders")
    except OSError:
        return None
    if reply.status != 200:
        return None
    body = json.loads(reply.body)
    assert body["path"] == "/v1/orders"
    return list(body["client_uris"])


def test_mutual_tls_with_the_secret_of_the_waypoints_namespace(egress: Egress) -> None:
    h.wait_until(lambda: partner_saw(egress.port) is not None, 20, "a request to the partner")
    assert partner_saw(egress.port) == [PARTNER_IDENTITIES["client"]]
    stats = egress.waypoint.stats()
    assert stats.get(f"cluster.inbound-vip|80|http|{PARTNER_HOST};.ssl.handshake", 0) >= 1
    # Envoy holds both SDS secrets, as it asked for them (the key redacted in its dump).
    dump = h.dump_section(h.config_dump(egress.waypoint), "Secrets")
    secrets = {entry["name"] for entry in dump.get("dynamic_active_secrets", ())}
    assert {"kubernetes://partner-client", "kubernetes://partner-client-cacert"} <= secrets


def test_an_edited_secret_reaches_the_next_connection(egress: Egress) -> None:
    write_secret(egress.config, egress.pki, "renewed")
    h.wait_until(
        lambda: partner_saw(egress.port) == [PARTNER_IDENTITIES["renewed"]],
        10,
        "the renewed client certificate",
    )
