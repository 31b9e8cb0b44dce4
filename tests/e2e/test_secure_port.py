"""The TLS port (15012): authenticated ADS with per-identity secrets, and the CA beside it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.client import DeltaClient, SotwClient
from xds.plane.app import ControlPlane
from xds.security.identity import Identity
from xds.security.plane import SecurityOptions
from xds.security.tokens import TokenGrant, add_grant
from xds.type_urls import ADDRESS, AUTHORIZATION, CLUSTER, SECRET

from ..conftest import running_control_plane
from ..security.support import ISTIOD_NAME, ec_key, make_csr, openssl_verify, verify_chain

WAYPOINT_NODE = "waypoint~10.244.1.50~waypoint-5d7f-abcde.bookinfo~bookinfo.svc.cluster.local"
ZTUNNEL_NODE = "ztunnel~10.244.1.2~ztunnel-a.istio-system~istio-system.svc.cluster.local"
GATEWAY = "gateway.networking.k8s.io/gateway-name"


@dataclass
class Secure:
    plane: ControlPlane
    tokens: dict[str, str]
    root_pem: bytes
    channels: list[grpc.aio.Channel]

    def channel(self, port: int | None = None, *, tls: bool = True) -> grpc.aio.Channel:
        if tls:
            channel = grpc.aio.secure_channel(
                f"127.0.0.1:{port or self.plane.ports.secure}",
                grpc.ssl_channel_credentials(self.root_pem),
                options=[("grpc.ssl_target_name_override", ISTIOD_NAME)],
            )
        else:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.channels.append(channel)
        return channel

    def auth(self, account: str | None) -> list[tuple[str, str]]:
        if account is None:
            return []
        token = self.tokens.get(account, "not-a-known-token")
        return [("authorization", f"Bearer {token}")]


@pytest.fixture
async def secure(demo_copy: Path, tmp_path: Path) -> AsyncIterator[Secure]:
    ca_dir = tmp_path / "ca"
    tokens_file = tmp_path / "tokens"
    tokens = {}
    for account in (
        "bookinfo/waypoint",
        "istio-system/ztunnel",
        "bookinfo/bookinfo-productpage",
        "default/default",
    ):
        tokens[account] = add_grant(tokens_file, TokenGrant(Identity.from_account(account)))
    async with running_control_plane(
        demo_copy, secure_port=-1, security=SecurityOptions(ca_dir=ca_dir, tokens_file=tokens_file)
    ) as plane:
        assert plane.security is not None
        root = (ca_dir / "root-cert.pem").read_bytes()
        secure = Secure(plane, tokens, root, [])
        yield secure
        for channel in secure.channels:
            await channel.close()


def waypoint(
    secure: Secure,
    account: str | None,
    *,
    gateway: str = "waypoint",
    node: str = WAYPOINT_NODE,
    delta: bool = True,
) -> Any:
    metadata = {"LABELS": {GATEWAY: gateway}, "NAMESPACE": "bookinfo"}
    cls = DeltaClient if delta else SotwClient
    return cls(secure.channel(), node, metadata=metadata, metadata_headers=secure.auth(account))


async def refusal(client: Any, subscriptions: dict[str, list[str]]) -> grpc.aio.AioRpcError:
    await client.connect(subscriptions)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        while True:
            await client.next()
    await client.close()
    return error.value


@pytest.mark.parametrize("delta", [True, False])
async def test_waypoint_gets_its_own_secrets(secure: Secure, delta: bool, tmp_path: Path) -> None:
    client = waypoint(secure, "bookinfo/waypoint", delta=delta)
    await client.connect({CLUSTER: [], SECRET: ["default", "ROOTCA"]})
    secrets: dict[str, Any] = {}
    while len(secrets) < 2:
        response = await client.next()
        if response.type_url != SECRET:
            continue
        for item in response.resources:
            body = item.resource.value if delta else item.value
            secret = secret_pb2.Secret.FromString(body)
            secrets[secret.name] = secret
    chain = secrets["default"].tls_certificate.certificate_chain.inline_bytes
    assert secrets["default"].tls_certificate.private_key.inline_bytes.startswith(b"-----BEGIN")
    assert secrets["ROOTCA"].validation_context.trusted_ca.inline_bytes == secure.root_pem
    leaf = x509.load_pem_x509_certificates(chain)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/bookinfo/sa/waypoint"
    ]
    result = openssl_verify(tmp_path / "verify", chain.decode(), secure.root_pem.decode())
    assert result.returncode == 0, result.stdout + result.stderr
    await client.close()


async def test_waypoint_identity_cannot_get_another_waypoints_config(secure: Secure) -> None:
    error = await refusal(waypoint(secure, "bookinfo/waypoint", gateway="other"), {CLUSTER: []})
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not serve Gateway bookinfo/other" in (error.details() or "")
    error = await refusal(waypoint(secure, "bookinfo/bookinfo-productpage"), {SECRET: ["default"]})
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


# What a dedicated-mode ztunnel (PROXY_MODE=dedicated, POD_NAME=local, POD_NAMESPACE=default)
# sends: its token is its workload's own account, not a node account.
DEDICATED_ZTUNNEL = "ztunnel~127.0.0.1~local.default~default.svc.cluster.local"
DEDICATED_METADATA = {
    "NAME": "local",
    "NAMESPACE": "default",
    "INSTANCE_IPS": "127.0.0.1",
    "NODE_NAME": "local",
    "CLUSTER_ID": "Kubernetes",
}


async def test_node_account_gets_ztunnel_config(secure: Secure) -> None:
    client = DeltaClient(
        secure.channel(), ZTUNNEL_NODE, metadata_headers=secure.auth("istio-system/ztunnel")
    )
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    assert (await client.next()).resources
    await client.close()


async def test_dedicated_ztunnel_gets_ztunnel_config_as_its_workload(secure: Secure) -> None:
    """istiod's rule: any identity matching the namespace its node claims."""
    client = DeltaClient(
        secure.channel(),
        DEDICATED_ZTUNNEL,
        metadata=DEDICATED_METADATA,
        metadata_headers=secure.auth("default/default"),
    )
    await client.connect({ADDRESS: [], AUTHORIZATION: []})
    types = {(await client.next()).type_url, (await client.next()).type_url}
    assert types == {ADDRESS, AUTHORIZATION}
    await client.close()


async def test_ztunnel_claiming_another_namespace_is_refused(secure: Secure) -> None:
    impostor = DeltaClient(
        secure.channel(),
        "ztunnel~127.0.0.1~local.other~other.svc.cluster.local",
        metadata={**DEDICATED_METADATA, "NAMESPACE": "other"},
        metadata_headers=secure.auth("default/default"),
    )
    error = await refusal(impostor, {ADDRESS: []})
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may not connect as a proxy of other/*" in (error.details() or "")


async def test_workload_token_cannot_impersonate(secure: Secure) -> None:
    """Serving a dedicated ztunnel its config grants no certificate rights beyond its own."""
    from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

    stub = ca_pb2_grpc.IstioCertificateServiceStub(secure.channel())
    wanted = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"
    request = ca_pb2.IstioCertificateRequest(csr=make_csr(wanted, ec_key()))
    request.metadata.update({"ImpersonatedIdentity": wanted})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.CreateCertificate(request, metadata=secure.auth("default/default"), timeout=10)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a trusted node account" in (error.value.details() or "")


@pytest.mark.parametrize("account", [None, "nobody/unknown"])
async def test_unauthenticated_streams_are_refused(secure: Secure, account: str | None) -> None:
    client = DeltaClient(secure.channel(), ZTUNNEL_NODE, metadata_headers=secure.auth(account))
    error = await refusal(client, {ADDRESS: []})
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not-a-known-token" not in (error.details() or "")


async def test_plaintext_port_never_serves_secrets(secure: Secure) -> None:
    client = DeltaClient(
        secure.channel(secure.plane.ports.xds, tls=False),
        WAYPOINT_NODE,
        metadata={"LABELS": {GATEWAY: "waypoint"}},
    )
    await client.connect({CLUSTER: [], SECRET: ["default", "ROOTCA"]})
    responses = {}
    while len(responses) < 2:
        response = await client.next()
        responses[response.type_url] = response
    # Answered as absent, and the stream (with its clusters) lives on.
    assert not responses[SECRET].resources
    assert sorted(responses[SECRET].removed_resources) == ["ROOTCA", "default"]
    assert responses[CLUSTER].resources
    assert len(secure.plane.connections) == 1
    await client.close()


async def test_ca_shares_the_port(secure: Secure, tmp_path: Path) -> None:
    from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

    stub = ca_pb2_grpc.IstioCertificateServiceStub(secure.channel())
    csr = make_csr("spiffe://cluster.local/ns/bookinfo/sa/someone-else", ec_key())
    response = await stub.CreateCertificate(
        ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=3600),
        metadata=secure.auth("bookinfo/bookinfo-productpage"),
        timeout=10,
    )
    chain = list(response.cert_chain)
    assert len(chain) >= 2
    assert verify_chain(tmp_path / "v", chain).returncode == 0
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"
    ]


async def test_short_validity_requests_get_the_ten_minute_floor(secure: Secure) -> None:
    """ztunnel with SECRET_TTL=60s would otherwise renew in a tight loop."""
    import datetime as dt

    from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

    stub = ca_pb2_grpc.IstioCertificateServiceStub(secure.channel())
    response = await stub.CreateCertificate(
        ca_pb2.IstioCertificateRequest(csr=make_csr(), validity_duration=60),
        metadata=secure.auth("default/default"),
        timeout=10,
    )
    leaf = x509.load_pem_x509_certificate(response.cert_chain[0].encode())
    remaining = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=9, seconds=50) < remaining <= dt.timedelta(minutes=10)


async def test_waypoint_secrets_rotate_before_expiry(demo_copy: Path, tmp_path: Path) -> None:
    import datetime as dt

    tokens_file = tmp_path / "tokens"
    token = add_grant(tokens_file, TokenGrant(Identity.from_account("bookinfo/waypoint")))
    options = SecurityOptions(
        ca_dir=tmp_path / "ca", tokens_file=tokens_file, default_cert_ttl=dt.timedelta(seconds=4)
    )
    async with running_control_plane(demo_copy, secure_port=-1, security=options) as plane:
        root = (tmp_path / "ca" / "root-cert.pem").read_bytes()
        secure = Secure(plane, {"bookinfo/waypoint": token}, root, [])
        client = waypoint(secure, "bookinfo/waypoint")
        await client.connect({SECRET: ["default"]})
        serials = []
        while len(serials) < 2:
            response = await client.next(within=6)
            for item in response.resources:
                chain = secret_pb2.Secret.FromString(
                    item.resource.value
                ).tls_certificate.certificate_chain.inline_bytes
                leaf = x509.load_pem_x509_certificates(chain)[0]
                serials.append((leaf.serial_number, leaf.not_valid_after_utc))
        (first, first_expiry), (second, _) = serials
        assert first != second
        assert dt.datetime.now(dt.UTC) < first_expiry  # replaced while still valid
        await client.close()
        for channel in secure.channels:
            await channel.close()


@pytest.mark.parametrize(
    "sa, allowed", [("bookinfo-productpage", True), ("bookinfo-details", False)]
)
async def test_ztunnel_impersonates_only_pods_on_its_node(
    demo_copy: Path, tmp_path: Path, sa: str, allowed: bool
) -> None:
    """The node account may ask for a pod's identity only if that pod runs on its node
    (productpage runs on node-a, details on node-b), judged from the mesh model."""
    from xds.proto.istio.v1.auth import ca_pb2, ca_pb2_grpc

    tokens_file = tmp_path / "tokens"
    token = add_grant(
        tokens_file, TokenGrant(Identity.from_account("istio-system/ztunnel"), node="node-a")
    )
    options = SecurityOptions(ca_dir=tmp_path / "ca", tokens_file=tokens_file)
    async with running_control_plane(demo_copy, secure_port=-1, security=options) as plane:
        root = (tmp_path / "ca" / "root-cert.pem").read_bytes()
        secure = Secure(plane, {"istio-system/ztunnel": token}, root, [])
        stub = ca_pb2_grpc.IstioCertificateServiceStub(secure.channel())
        wanted = f"spiffe://cluster.local/ns/bookinfo/sa/{sa}"
        request = ca_pb2.IstioCertificateRequest(csr=make_csr(wanted, ec_key()))
        request.metadata.update({"ImpersonatedIdentity": wanted})
        call = stub.CreateCertificate(
            request, metadata=secure.auth("istio-system/ztunnel"), timeout=10
        )
        if allowed:
            chain = list((await call).cert_chain)
            assert verify_chain(tmp_path / "v", chain).returncode == 0
            leaf = x509.load_pem_x509_certificate(chain[0].encode())
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.UniformResourceIdentifier) == [wanted]
        else:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await call
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        for channel in secure.channels:
            await channel.close()


async def test_refused_streams_are_logged_once_and_counted(
    secure: Secure, caplog: pytest.LogCaptureFixture
) -> None:
    from xds.serving.metrics import STREAM_REFUSALS

    def count(code: str) -> float:
        return STREAM_REFUSALS._values.get((code,), 0.0)

    before = {
        code: count(code) for code in ("UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT")
    }
    caplog.set_level(logging.INFO, logger="xds.ads")
    for _ in range(3):  # a proxy retrying in a loop: one warning, three counts
        await refusal(
            DeltaClient(secure.channel(), ZTUNNEL_NODE, metadata_headers=secure.auth(None)),
            {ADDRESS: []},
        )
    impostor = DeltaClient(
        secure.channel(),
        "ztunnel~127.0.0.1~local.other~other.svc.cluster.local",
        metadata={**DEDICATED_METADATA, "NAMESPACE": "other"},
        metadata_headers=secure.auth("default/default"),
    )
    await refusal(impostor, {ADDRESS: []})
    huge = "ztunnel~" + "x" * 1_000_000
    await refusal(
        DeltaClient(secure.channel(), huge, metadata_headers=secure.auth("default/default")),
        {ADDRESS: []},
    )

    refused = [r for r in caplog.records if r.getMessage() == "stream refused"]
    assert [r.code for r in refused] == [  # type: ignore[attr-defined]
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "INVALID_ARGUMENT",
    ]
    unauthenticated, denied, invalid = refused
    assert unauthenticated.peer.startswith("ipv4:127.0.0.1:")  # type: ignore[attr-defined]
    assert "ns/default/sa/default" in denied.identity  # type: ignore[attr-defined]
    assert denied.proxy == "ztunnel~127.0.0.1~local.other~other.svc.cluster.local"  # type: ignore[attr-defined]
    assert "other/*" in denied.reason  # type: ignore[attr-defined]
    assert len(invalid.proxy) == 200  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING for r in refused)
    assert count("UNAUTHENTICATED") - before["UNAUTHENTICATED"] == 3
    assert count("PERMISSION_DENIED") - before["PERMISSION_DENIED"] == 1
    assert count("INVALID_ARGUMENT") - before["INVALID_ARGUMENT"] == 1
