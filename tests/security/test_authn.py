"""Tokens file and authenticators: who a caller is, and why not."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from xds.logs import LineFormatter
from xds.security.authn import (
    AuthenticationError,
    Caller,
    FirstOf,
    InsecureDevAuthenticator,
    KubeTokenAuthenticator,
    ReviewedToken,
    TokensFileAuthenticator,
    bearer_token,
)
from xds.security.identity import Identity
from xds.security.tokens import TokenGrant, TokensFile, add_grant, parse_line

from .support import TD

APP = Identity(TD, "default", "app")
ZTUNNEL = Identity(TD, "istio-system", "ztunnel")
PEER = "ipv4:127.0.0.1:40000"


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}"), ("clusterid", "c1")]


def test_add_grant_writes_a_private_file_and_a_fresh_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    first = add_grant(path, TokenGrant(APP))
    second = add_grant(path, TokenGrant(ZTUNNEL, node="node-a"))
    assert first != second and len(first) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines == [f"{first} default/app", f"{second} istio-system/ztunnel node=node-a"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("short default/app", "shorter than 16"),
        ("x" * 20, "missing <namespace>/<service account>"),
        ("x" * 20 + " default", "not of the form"),
        ("x" * 20 + " Default/app", "invalid namespace"),
        ("x" * 20 + " default/app colour=blue", "unknown option 'colour'"),
        ("x" * 20 + " default/app expires=soon", "not an ISO 8601 time"),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    from xds.security.tokens import TokensFileError

    with pytest.raises(TokensFileError, match=message) as info:
        parse_line(line, TD)
    assert "x" * 20 not in str(info.value)


def test_comments_and_blank_lines() -> None:
    assert parse_line("   # nothing", TD) is None
    assert parse_line("", TD) is None
    parsed = parse_line("t" * 16 + " default/app node=n1 # trailing", TD)
    assert parsed == ("t" * 16, TokenGrant(APP, node="n1"))


async def test_tokens_file_authenticates_and_reloads_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    authenticator = TokensFileAuthenticator(TokensFile(path, TD))
    with pytest.raises(AuthenticationError, match="not known"):
        await authenticator.authenticate(bearer("a" * 43), PEER)
    token = add_grant(path, TokenGrant(APP))
    caller = await authenticator.authenticate(bearer(token), PEER)
    assert caller == Caller(APP, "tokens-file", cluster_id="c1")
    # Removing the line revokes the token on the next call.
    path.write_text("# empty now\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within one clock tick
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(bearer(token), PEER)


async def test_node_bound_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_grant(path, TokenGrant(ZTUNNEL, node="node-a"))
    caller = await TokensFileAuthenticator(TokensFile(path, TD)).authenticate(bearer(token), PEER)
    assert caller.node == "node-a" and caller.identity == ZTUNNEL


async def test_expired_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    token = add_grant(path, TokenGrant(APP, expires=past))
    with pytest.raises(AuthenticationError, match="expired") as info:
        await TokensFileAuthenticator(TokensFile(path, TD)).authenticate(bearer(token), PEER)
    assert token not in str(info.value)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "no credentials"),
        ([("authorization", "Basic dXNlcjpwYXNz")], "not a Bearer token"),
        ([("authorization", "Bearer ")], "empty"),
        ([("authorization", "Bearer " + "x" * 20_000)], "too long"),
    ],
)
def test_bearer_token_errors(metadata: Sequence[tuple[str, str]], message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        bearer_token(metadata)


def test_bad_lines_are_skipped_and_logged_without_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    good = "g" * 32
    secret = "s" * 32
    path.write_text(f"{secret} Not/valid\n{good} default/app\n{good} default/other\n")
    path.chmod(0o644)
    with caplog.at_level(logging.INFO):
        tokens = TokensFile(path, TD)
        assert tokens.lookup(good) == TokenGrant(APP)
        assert tokens.lookup(secret) is None
    lines = [LineFormatter().format(record) for record in caplog.records]
    ignored = [line for line in lines if "tokens file line ignored" in line]
    assert len(ignored) == 2
    assert " line=1 " in ignored[0] and 'reason="duplicate token"' in ignored[1]
    assert any("chmod 600" in line for line in lines)
    assert not any(secret in line or good in line for line in lines)


async def test_insecure_dev_admits_anonymous_but_keeps_real_identities(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_grant(path, TokenGrant(APP))
    dev = InsecureDevAuthenticator(TokensFileAuthenticator(TokensFile(path, TD)))
    anonymous = await dev.authenticate([], PEER)
    assert anonymous.anonymous and anonymous.authenticator == "insecure-dev"
    assert (await dev.authenticate(bearer(token), PEER)).identity == APP


class FakeReviewer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], str]] = []

    async def review(self, token: str, audiences: Sequence[str], cluster_id: str) -> ReviewedToken:
        self.calls.append((token, tuple(audiences), cluster_id))
        if token != "jwt-for-ztunnel":
            raise AuthenticationError("token is not authenticated")
        return ReviewedToken("istio-system", "ztunnel", pod_name="ztunnel-x", node="node-a")


async def test_kube_authenticator_caches_successes_only() -> None:
    reviewer = FakeReviewer()
    kube = KubeTokenAuthenticator(reviewer, trust_domain=TD)
    for _ in range(3):
        caller = await kube.authenticate(bearer("jwt-for-ztunnel"), PEER)
    assert caller.identity == ZTUNNEL and caller.node == "node-a" and caller.cluster_id == "c1"
    assert reviewer.calls == [("jwt-for-ztunnel", ("istio-ca",), "c1")]
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await kube.authenticate(bearer("other"), PEER)
    assert len(reviewer.calls) == 3


async def test_first_of_reports_the_primary_reason(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_grant(path, TokenGrant(APP))
    chain = FirstOf(
        [
            KubeTokenAuthenticator(FakeReviewer(), trust_domain=TD),
            TokensFileAuthenticator(TokensFile(path, TD)),
        ]
    )
    assert (await chain.authenticate(bearer(token), PEER)).identity == APP
    with pytest.raises(AuthenticationError, match="not authenticated"):
        await chain.authenticate(bearer("nope" * 10), PEER)
