"""``xds client ztunnel``: hold a ztunnel's stream against a running server, for debugging.

It sends what ztunnel sends (its node id and NAME / NAMESPACE / INSTANCE_IPS /
CLUSTER_ID metadata, one wildcard Delta request for Address and one for
Authorization), ACKs every response, and prints one line per response, so that
``/debug/syncz``, CSDS and the metrics have a proxy to show. On the TLS port it
presents a bearer token (``xds token add``) and trusts the given root.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc

from xds.cli.common import EXIT_OK, CommandError, Parser
from xds.client import DeltaClient
from xds.type_urls import ADDRESS, AUTHORIZATION, short_name

DEFAULT_NODE_ID = "ztunnel~10.244.1.2~ztunnel-7x2kq.istio-system~istio-system.svc.cluster.local"
SERVER_NAME = "istiod.istio-system.svc"


def register(subparsers: argparse._SubParsersAction[Parser]) -> None:
    client = subparsers.add_parser(
        "client", help="act as a proxy against a running server (debugging)"
    )
    kinds = client.add_subparsers(dest="kind", required=True, metavar="KIND")
    ztunnel = kinds.add_parser(
        "ztunnel", help="hold a ztunnel's Delta stream and print each response"
    )
    ztunnel.add_argument(
        "--xds-address", default="localhost:15010", metavar="HOST:PORT", help="the server's port"
    )
    ztunnel.add_argument(
        "--node-id",
        default=DEFAULT_NODE_ID,
        help="ztunnel~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local",
    )
    ztunnel.add_argument(
        "--token-file", type=Path, help="a bearer token for the TLS port (xds token add)"
    )
    ztunnel.add_argument("--ca-root", type=Path, help="the root to trust on the TLS port")
    ztunnel.add_argument(
        "--responses",
        type=int,
        default=0,
        metavar="N",
        help="exit after N responses (default: run until interrupted)",
    )
    ztunnel.set_defaults(run=run_ztunnel, command_name="client ztunnel")


def run_ztunnel(args: argparse.Namespace) -> int:
    if (args.token_file is None) != (args.ca_root is None):
        raise CommandError("--token-file and --ca-root go together (the TLS port needs both)")
    asyncio.run(_hold(args))  # Ctrl-C ends it (exit code 130)
    return EXIT_OK


async def _hold(args: argparse.Namespace) -> None:
    parts = args.node_id.split("~")
    if len(parts) != 4 or parts[0] != "ztunnel" or "." not in parts[2]:
        raise CommandError(f"--node-id {args.node_id!r} is not a ztunnel node id")
    ip, (pod, namespace) = parts[1], parts[2].split(".", 1)
    async with _channel(args) as channel:
        client = DeltaClient(
            channel,
            args.node_id,
            metadata={
                "NAME": pod,
                "NAMESPACE": namespace,
                "INSTANCE_IPS": ip,
                "CLUSTER_ID": "Kubernetes",
            },
            metadata_headers=_headers(args),
        )
        await client.connect({ADDRESS: [], AUTHORIZATION: []})
        seen = 0
        try:
            while not args.responses or seen < args.responses:
                try:
                    response = await client.next(within=3600)
                except TimeoutError:
                    continue
                except grpc.aio.AioRpcError as error:
                    raise CommandError(f"{error.code().name}: {error.details()}") from None
                except EOFError:
                    raise CommandError("the server ended the stream") from None
                seen += 1
                held = len(client.held.get(response.type_url, {}))
                print(
                    f"{short_name(response.type_url)}: +{len(response.resources)} "
                    f"-{len(response.removed_resources)} (holding {held}) ACKed",
                    flush=True,
                )
        finally:
            await client.close()


def _channel(args: argparse.Namespace) -> grpc.aio.Channel:
    if args.ca_root is None:
        return grpc.aio.insecure_channel(args.xds_address)
    try:
        root = args.ca_root.read_bytes()
    except OSError as error:
        raise CommandError.of(error) from None
    return grpc.aio.secure_channel(
        args.xds_address,
        grpc.ssl_channel_credentials(root),
        options=[("grpc.ssl_target_name_override", SERVER_NAME)],
    )


def _headers(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.token_file is None:
        return []
    try:
        token = args.token_file.read_text().strip()
    except OSError as error:
        raise CommandError.of(error) from None
    if not token:
        raise CommandError(f"token file {args.token_file} is empty")
    return [("authorization", f"Bearer {token}")]
