"""``xds bootstrap waypoint``: print the bootstrap for a stock Envoy waypoint.

Reads the pod's facts (``POD_NAME``, ``INSTANCE_IP``) from the environment, as
the container's entrypoint would; the pure rendering is ``translate.waypoint.bootstrap``.
Exit codes and error lines: ``xds.cli.common``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from xds.cli.common import EXIT_OK, CommandError
from xds.translate.waypoint.bootstrap import DEFAULT_SERVER_NAME, BootstrapOptions, bootstrap_yaml


def register(subparsers: Any) -> None:
    """Add ``bootstrap waypoint`` to the subparsers object of the ``xds`` parser."""
    bootstrap = subparsers.add_parser("bootstrap", help="Envoy bootstrap files")
    kinds = bootstrap.add_subparsers(
        dest="bootstrap_kind", metavar="{waypoint}", required=True, parser_class=type(bootstrap)
    )
    waypoint = kinds.add_parser(
        "waypoint",
        help="bootstrap for a stock Envoy running as a waypoint",
        description="Print a bootstrap that connects a stock Envoy to this control plane as "
        "the waypoint of Gateway NAMESPACE/NAME.",
    )
    waypoint.add_argument("--namespace", required=True, help="namespace of the waypoint Gateway")
    waypoint.add_argument("--name", required=True, help="name of the waypoint Gateway")
    waypoint.add_argument(
        "--xds-address",
        required=True,
        type=_host_port,
        metavar="HOST:PORT",
        help="the control plane's xDS address (15012 with TLS, 15010 without)",
    )
    waypoint.add_argument(
        "--pod-ip",
        type=_ip,
        default=None,
        help="this proxy's IP (default: $INSTANCE_IP, $POD_IP, or 127.0.0.1)",
    )
    waypoint.add_argument(
        "--pod-name",
        default=None,
        help="this proxy's pod name (default: $POD_NAME, or the host name)",
    )
    waypoint.add_argument(
        "--service-account",
        default=None,
        help="the proxy's service account (default: the Gateway name)",
    )
    waypoint.add_argument(
        "--token-file", type=Path, default=None, help="bearer token sent on the xDS stream"
    )
    waypoint.add_argument(
        "--ca-root",
        type=Path,
        default=None,
        help="PEM roots that verify the control plane; without it, plaintext",
    )
    waypoint.add_argument(
        "--server-name",
        default=DEFAULT_SERVER_NAME,
        help="name the control plane's certificate must carry (default %(default)s)",
    )
    flavour = waypoint.add_mutually_exclusive_group()
    flavour.add_argument(
        "--delta",
        dest="delta",
        action="store_true",
        default=True,
        help="incremental (Delta) ADS, as istio-proxy waypoints use (default)",
    )
    flavour.add_argument(
        "--sotw", dest="delta", action="store_false", help="state-of-the-world ADS"
    )
    waypoint.add_argument(
        "--admin-port",
        type=_port,
        default=15000,
        help="admin port on 127.0.0.1 (default %(default)s)",
    )
    waypoint.add_argument(
        "--readiness-port",
        type=_port_or_zero,
        default=15021,
        help="port of /healthz/ready; 0 for none (default %(default)s)",
    )
    waypoint.add_argument(
        "--prometheus-port",
        type=_port_or_zero,
        default=15090,
        help="port of /stats/prometheus; 0 for none (default %(default)s)",
    )
    waypoint.add_argument(
        "--output", "-o", type=Path, default=None, help="write to this file instead of stdout"
    )
    waypoint.set_defaults(run=run_bootstrap_waypoint, command_name="bootstrap waypoint")


def run_bootstrap_waypoint(args: argparse.Namespace) -> int:
    host, port = args.xds_address
    token = None
    try:
        if args.token_file is not None:
            token = args.token_file.read_text().strip()
            if not token:
                raise CommandError(f"token file {args.token_file} is empty")
        if args.ca_root is not None and not args.ca_root.is_file():
            raise CommandError(f"CA root {args.ca_root} does not exist")
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None
    options = BootstrapOptions(
        namespace=args.namespace,
        name=args.name,
        xds_host=host,
        xds_port=port,
        pod_ip=args.pod_ip
        or os.environ.get("INSTANCE_IP")
        or os.environ.get("POD_IP")
        or "127.0.0.1",
        pod_name=args.pod_name or os.environ.get("POD_NAME") or socket.gethostname(),
        service_account=args.service_account or "",
        token=token,
        ca_root_path=str(args.ca_root.resolve()) if args.ca_root is not None else None,
        server_name=args.server_name,
        delta=args.delta,
        admin_port=args.admin_port,
        readiness_port=args.readiness_port,
        prometheus_port=args.prometheus_port,
    )
    text = bootstrap_yaml(options)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.output.write_text(text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror}") from None
    return EXIT_OK


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host, int(port)


def _ip(value: str) -> str:
    try:
        return str(ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (1-65535)")
    return int(value)


def _port_or_zero(value: str) -> int:
    return 0 if value == "0" else _port(value)
