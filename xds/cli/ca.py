"""``xds ca init|show`` and ``xds token add``.

``register(subparsers)`` adds the commands to the main parser (exit codes and
error lines: ``xds.cli.common``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path
from typing import Any, Final

from cryptography import x509

from xds.cli.common import EXIT_OK, CommandError, UsageError
from xds.security.authz import DEFAULT_TRUSTED_NODE_ACCOUNTS
from xds.security.ca import (
    DEFAULT_WORKLOAD_TTL,
    MAX_WORKLOAD_TTL,
    CaError,
    KeyAlgorithm,
    describe_key,
    fingerprint,
)
from xds.security.ca_files import ROOT_CERT, CaDirectory, default_ca_dir
from xds.security.fileio import PRIVATE, atomic_write
from xds.security.identity import DEFAULT_TRUST_DOMAIN, Identity, InvalidIdentity
from xds.security.plane import SecurityOptions
from xds.security.serving_tls import subject_alt_names
from xds.security.tokens import TOKENS_FILE, TokenGrant, add_grant

_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``24h``, ``30m``, ``45s`` or plain seconds; ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a positive duration like 90d, 24h, 30m or 3600")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def add_ca_dir_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--ca-dir`` as every command that touches the CA spells it (also for ``serve``)."""
    parser.add_argument(
        "--ca-dir",
        type=Path,
        default=None,
        help=f"CA directory (cacerts layout); default {default_ca_dir()}",
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The CA / TLS-port flags of ``xds serve``; read them back with ``security_options``."""
    group = parser.add_argument_group("CA and TLS port")
    add_ca_dir_argument(group)
    group.add_argument(
        "--ca-key-algorithm",
        choices=[a.value for a in KeyAlgorithm],
        default=KeyAlgorithm.EC_P256.value,
        help="key type of a root created on first start (default %(default)s)",
    )
    group.add_argument(
        "--tokens-file",
        type=Path,
        default=None,
        help=f"bearer tokens (default <ca-dir>/{TOKENS_FILE}); re-read on change",
    )
    group.add_argument(
        "--insecure-dev-auth",
        action="store_true",
        help="DEVELOPMENT ONLY: accept callers without valid credentials",
    )
    group.add_argument(
        "--trusted-node-accounts",
        type=_accounts_arg,
        default=DEFAULT_TRUSTED_NODE_ACCOUNTS,
        metavar="NS/SA[,NS/SA...]",
        help="node agents that may request certificates for pods on their node "
        "(default istio-system/ztunnel; '' for none)",
    )
    group.add_argument(
        "--system-namespace",
        default="istio-system",
        help="namespace in the serving certificate's istiod names",
    )
    group.add_argument("--revision", default="", help="adds istiod-<revision>.<ns>.svc")
    group.add_argument(
        "--tls-host",
        action="append",
        type=_host_arg,
        default=[],
        metavar="HOST",
        help="extra DNS name or IP for the serving certificate (repeatable)",
    )
    group.add_argument(
        "--default-cert-ttl",
        type=_duration_arg,
        default=DEFAULT_WORKLOAD_TTL,
        help="workload certificate TTL when none is requested (default 24h)",
    )
    group.add_argument(
        "--max-cert-ttl",
        type=_duration_arg,
        default=MAX_WORKLOAD_TTL,
        help="longest TTL a workload may request (default 90d)",
    )


_TRUST_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")


def trust_domain_arg(text: str) -> str:
    """A SPIFFE trust domain: lowercase letters, digits, '.', '-' and '_' (SPIFFE ID spec)."""
    if len(text) > 255 or not _TRUST_DOMAIN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a trust domain (lowercase letters, digits, '.', '-', '_'; "
            "e.g. cluster.local)"
        )
    return text


def security_options(args: argparse.Namespace, *, trust_domain: str) -> SecurityOptions:
    """``SecurityOptions`` from arguments added by ``add_serve_arguments``.

    Raises ``ValueError`` for settings that contradict each other."""
    if args.default_cert_ttl > args.max_cert_ttl:
        raise ValueError(
            f"--default-cert-ttl ({args.default_cert_ttl}) is longer than "
            f"--max-cert-ttl ({args.max_cert_ttl})"
        )
    return SecurityOptions(
        ca_dir=args.ca_dir,
        key_algorithm=KeyAlgorithm(args.ca_key_algorithm),
        trust_domain=trust_domain,
        tokens_file=args.tokens_file,
        insecure_dev_auth=args.insecure_dev_auth,
        trusted_node_accounts=args.trusted_node_accounts,
        system_namespace=args.system_namespace,
        revision=args.revision,
        extra_hosts=tuple(args.tls_host),
        default_cert_ttl=args.default_cert_ttl,
        max_cert_ttl=args.max_cert_ttl,
    )


def register(subparsers: Any) -> None:
    """Add ``ca`` and ``token`` to the subparsers object of the ``xds`` parser."""
    ca = subparsers.add_parser("ca", help="the mesh certificate authority")
    ca_commands = ca.add_subparsers(dest="ca_command", metavar="{init,show}", required=True)

    init = ca_commands.add_parser("init", help="create a self-signed root CA")
    add_ca_dir_argument(init)
    init.add_argument(
        "--key-algorithm",
        choices=[a.value for a in KeyAlgorithm],
        default=KeyAlgorithm.EC_P256.value,
        help="CA key type (default %(default)s)",
    )
    init.add_argument(
        "--trust-domain",
        default=DEFAULT_TRUST_DOMAIN,
        type=trust_domain_arg,
        help="organization of the root (default %(default)s)",
    )
    init.add_argument(
        "--root-ttl",
        type=_duration_arg,
        default=dt.timedelta(days=3650),
        help="root validity (default 3650d)",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="replace an existing CA: every issued certificate stops verifying",
    )
    init.set_defaults(run=run_ca_init, command_name="ca init")

    show = ca_commands.add_parser("show", help="print the CA's certificates")
    add_ca_dir_argument(show)
    show.set_defaults(run=run_ca_show, command_name="ca show")

    token = subparsers.add_parser("token", help="bearer tokens for file mode")
    token_commands = token.add_subparsers(dest="token_command", metavar="{add}", required=True)
    add = token_commands.add_parser(
        "add", help="create a token for NS/SA; prints the token alone on stdout"
    )
    add.add_argument("account", metavar="NS/SA", help="namespace/service-account")
    where = add.add_mutually_exclusive_group()
    where.add_argument(
        "--ca-dir",
        type=Path,
        default=None,
        help=f"use <ca-dir>/{TOKENS_FILE} (default {default_ca_dir()})",
    )
    where.add_argument("--tokens-file", type=Path, default=None, help="tokens file to append to")
    add.add_argument(
        "--node",
        default=None,
        help="bind the token to a node (lets a node agent impersonate its pods)",
    )
    add.add_argument(
        "--expires-in",
        type=_duration_arg,
        default=None,
        help="token lifetime, e.g. 30d (default: no expiry)",
    )
    add.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the token to FILE (mode 0600, no trailing newline: what "
        "ztunnel's AUTH_TOKEN and Envoy's token file expect) instead of stdout",
    )
    add.set_defaults(run=run_token_add, command_name="token add")


def run_ca_init(args: argparse.Namespace) -> int:
    directory = CaDirectory(args.ca_dir or default_ca_dir())
    try:
        material = directory.create(
            KeyAlgorithm(args.key_algorithm),
            organization=args.trust_domain,
            root_ttl=args.root_ttl,
            force=args.force,
        )
    except (CaError, OSError) as exc:
        raise CommandError.of(exc) from None
    print(f"root CA created in {directory.path}")
    print(f"root certificate:   {directory.root_cert_path}")
    print(f"SHA256 Fingerprint: {material.root_fingerprint}")
    return EXIT_OK


def run_ca_show(args: argparse.Namespace) -> int:
    directory = CaDirectory(args.ca_dir or default_ca_dir())
    if not directory.has_material():
        raise CommandError(f"{directory.path} holds no CA (create one with 'xds ca init')")
    try:
        material = directory.load()
    except (CaError, OSError) as exc:
        raise CommandError.of(exc) from None
    kind = "self-signed root" if material.self_signed else "plug-in (intermediate)"
    print(f"CA directory:       {directory.path}")
    print(f"mode:               {kind}")
    print(f"root distribution:  {directory.path / ROOT_CERT}")
    print(f"key:                {describe_key(material.key)}")
    sections: list[tuple[str, x509.Certificate]] = []
    if not material.self_signed:
        sections.append(("signing certificate", material.cert))
        sections.extend(("intermediate", c) for c in material.intermediates)
    sections.extend(("root", c) for c in material.roots)
    for title, cert in sections:
        print()
        _print_certificate(title, cert)
    return EXIT_OK


def run_token_add(args: argparse.Namespace) -> int:
    try:
        identity = Identity.from_account(args.account)
    except InvalidIdentity as exc:
        raise UsageError(str(exc)) from None
    path: Path = args.tokens_file or (args.ca_dir or default_ca_dir()) / TOKENS_FILE
    expires = dt.datetime.now(dt.UTC) + args.expires_in if args.expires_in else None
    try:
        token = add_grant(path, TokenGrant(identity, node=args.node, expires=expires))
        if args.output is not None:
            atomic_write(args.output, token.encode(), PRIVATE)
            return EXIT_OK
    except OSError as exc:
        raise CommandError.of(exc) from None
    # Token files are sent verbatim (ztunnel puts the file into a header, and a
    # newline there is invalid): only a terminal gets the newline.
    sys.stdout.write(token + "\n" if sys.stdout.isatty() else token)
    sys.stdout.flush()
    return EXIT_OK


def _print_certificate(title: str, cert: x509.Certificate) -> None:
    print(f"{title}:")
    print(f"  subject:            {cert.subject.rfc4514_string() or '(empty)'}")
    print(f"  issuer:             {cert.issuer.rfc4514_string() or '(empty)'}")
    print(f"  not before:         {cert.not_valid_before_utc.isoformat()}")
    print(f"  not after:          {cert.not_valid_after_utc.isoformat()}")
    print(f"  key:                {describe_key(cert.public_key())}")
    print(f"  SHA256 Fingerprint: {fingerprint(cert)}")


def _accounts_arg(text: str) -> frozenset[str]:
    accounts = frozenset(a.strip() for a in text.split(",") if a.strip())
    for account in accounts:
        try:
            Identity.from_account(account)
        except InvalidIdentity as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return accounts


def _host_arg(text: str) -> str:
    host = text.strip().lower()
    try:
        subject_alt_names([host])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return host


def _duration_arg(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
