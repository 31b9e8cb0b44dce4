"""``xds ca init|show`` and ``xds token add`` as processes: output, files, exit codes."""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from xds.cli.ca import parse_duration
from xds.cli.main import build_parser
from xds.security.tokens import TokensFile

from ..helpers import xds
from ..security.support import OPENSSL, TD

REPO = Path(__file__).resolve().parents[2]


def openssl_fingerprint(path: Path) -> str:
    out = subprocess.run(
        [OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split("=", 1)[1]


def test_init_show_and_init_again(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    init = xds("ca", "init", "--ca-dir", str(ca_dir))
    assert init.returncode == 0, init.stderr
    fp = openssl_fingerprint(ca_dir / "root-cert.pem")
    assert fp in init.stdout

    show = xds("ca", "show", "--ca-dir", str(ca_dir))
    assert show.returncode == 0, show.stderr
    assert "self-signed root" in show.stdout
    assert "ECDSA P-256" in show.stdout
    assert f"SHA256 Fingerprint: {fp}" in show.stdout
    assert "O=cluster.local" in show.stdout and "not after:" in show.stdout

    again = xds("ca", "init", "--ca-dir", str(ca_dir))
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "already holds a CA" in again.stderr
    assert openssl_fingerprint(ca_dir / "root-cert.pem") == fp

    forced = xds("ca", "init", "--ca-dir", str(ca_dir), "--force", "--key-algorithm", "rsa-4096")
    assert forced.returncode == 0, forced.stderr
    assert openssl_fingerprint(ca_dir / "root-cert.pem") != fp
    assert "RSA 4096" in xds("ca", "show", "--ca-dir", str(ca_dir)).stdout


def test_default_ca_dir_is_under_xdg_state_home(tmp_path: Path) -> None:
    result = xds("ca", "init", env={"XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "xds-ambient" / "ca" / "root-cert.pem").exists()


def test_show_plugin_ca(tmp_path: Path) -> None:
    from ..security.support import write_plugin_ca

    write_plugin_ca(tmp_path)
    show = xds("ca", "show", "--ca-dir", str(tmp_path))
    assert show.returncode == 0, show.stderr
    assert "plug-in (intermediate)" in show.stdout
    assert "signing certificate:" in show.stdout and "CN=intermediate" in show.stdout


def test_show_without_a_ca_fails_with_one_line(tmp_path: Path) -> None:
    result = xds("ca", "show", "--ca-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert result.stderr.startswith("xds ca show: ") and result.stderr.count("\n") == 1


def test_token_add_prints_only_the_token(tmp_path: Path) -> None:
    """Piped into a file, the token has no newline: ztunnel sends token files verbatim."""
    result = xds("token", "add", "default/app", "--ca-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    token = result.stdout
    assert token.strip() == token and len(token) == 43
    grant = TokensFile(tmp_path / "tokens", TD).lookup(token)
    assert grant is not None and grant.identity.account == "default/app"


def test_token_add_ends_the_line_on_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "xds",
                "token",
                "add",
                "default/app",
                "--ca-dir",
                str(tmp_path),
            ],
            cwd=REPO,
            stdout=terminal,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0
        printed = os.read(controller, 1024)
    finally:
        os.close(terminal)
        os.close(controller)
    assert printed.endswith(b"\r\n") and len(printed.strip()) == 43


def test_token_add_output_file(tmp_path: Path) -> None:
    target = tmp_path / "ztunnel-token"
    result = xds(
        "token", "add", "default/default", "--ca-dir", str(tmp_path), "--output", str(target)
    )
    assert result.returncode == 0 and result.stdout == "", result.stderr
    token = target.read_text()
    assert token.strip() == token and len(token) == 43
    assert target.stat().st_mode & 0o777 == 0o600
    assert TokensFile(tmp_path / "tokens", TD).lookup(token) is not None


def test_token_add_with_node_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "custom-tokens"
    result = xds(
        "token",
        "add",
        "istio-system/ztunnel",
        "--tokens-file",
        str(path),
        "--node",
        "node-a",
        "--expires-in",
        "2h",
    )
    assert result.returncode == 0, result.stderr
    grant = TokensFile(path, TD).lookup(result.stdout.strip())
    assert grant is not None and grant.node == "node-a" and grant.expires is not None
    remaining = grant.expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=1, minutes=59) < remaining <= dt.timedelta(hours=2)


@pytest.mark.parametrize(
    "args",
    [
        ["token", "add", "not-an-account"],
        ["token", "add", "a/b", "--ca-dir", "x", "--tokens-file", "y"],
        ["token", "add", "a/b", "--expires-in", "soon"],
        ["ca", "init", "--key-algorithm", "dsa"],
        ["ca"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    result = xds(*args, env={"XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""


def test_parse_duration() -> None:
    assert parse_duration("90d") == dt.timedelta(days=90)
    assert parse_duration("3600") == dt.timedelta(hours=1)
    for bad in ("0", "-1h", "1w", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_command_has_a_handler_and_a_name() -> None:
    parser = build_parser()
    for argv, name in (
        (["ca", "init"], "ca init"),
        (["ca", "show"], "ca show"),
        (["token", "add", "a/b"], "token add"),
    ):
        args = parser.parse_args(argv)
        assert callable(args.run) and args.command_name == name
