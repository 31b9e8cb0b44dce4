"""Who may read /debug: loopback, or a bearer token's identity (istiod's AuthorizeDebugRequest)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from xds.security.authn import TokensFileAuthenticator
from xds.security.identity import Identity
from xds.security.tokens import TokenGrant, TokensFile, add_grant
from xds.serving.debug import EVERYTHING, DebugAccess, DebugCaller
from xds.serving.http import HttpRequest, HttpResponse

REMOTE = "192.0.2.7"


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "tokens"
    return {
        account: add_grant(path, TokenGrant(Identity.from_account(account)))
        for account in ("istio-system/istioctl", "bookinfo/reviews")
    }


@pytest.fixture
def access(tmp_path: Path, tokens: dict[str, str]) -> DebugAccess:
    authenticator = TokensFileAuthenticator(TokensFile(tmp_path / "tokens", "cluster.local"))
    return DebugAccess(authenticator, "istio-system")


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every line the debug scope logs while the test runs (whatever configured logging)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + " " + repr(vars(record)))

    logger = logging.getLogger("xds.debug")
    handler = Collect()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def request(path: str, peer: str = REMOTE, token: str | None = None) -> HttpRequest:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    return HttpRequest("GET", path, {}, headers, peer)


def status(answer: DebugCaller | HttpResponse) -> int:
    return answer.status if isinstance(answer, HttpResponse) else 200


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1"])
async def test_loopback_callers_read_everything(access: DebugAccess, peer: str) -> None:
    assert await access(request("/debug/syncz", peer)) == EVERYTHING


async def test_remote_callers_need_a_token(access: DebugAccess, logged: list[str]) -> None:
    answer = await access(request("/debug/syncz"))
    assert status(answer) == 401
    assert isinstance(answer, HttpResponse) and b"Bearer" in answer.body
    assert any("refused" in line for line in logged)


async def test_an_unknown_token_is_401_and_never_echoed(
    access: DebugAccess, logged: list[str]
) -> None:
    forged = "forged-token-0123456789abcdef"
    answer = await access(request("/debug/config_dump", token=forged))
    assert status(answer) == 401
    assert isinstance(answer, HttpResponse) and forged.encode() not in answer.body
    assert logged and not any(forged in line for line in logged)


async def test_system_namespace_identities_read_everything(
    access: DebugAccess, tokens: dict[str, str]
) -> None:
    token = tokens["istio-system/istioctl"]
    for path in ("/debug/syncz", "/debug/registryz", "/debug/config_dump"):
        assert await access(request(path, token=token)) == EVERYTHING


async def test_other_identities_read_only_their_namespaces_config_dump(
    access: DebugAccess, tokens: dict[str, str], logged: list[str]
) -> None:
    token = tokens["bookinfo/reviews"]
    assert await access(request("/debug/config_dump", token=token)) == DebugCaller("bookinfo")
    for path in ("/debug/syncz", "/debug/ambientz", "/debug/loglevel", "/debug"):
        answer = await access(request(path, token=token))
        assert status(answer) == 403, path
    assert not any(token in line for line in logged)


async def test_without_a_tls_port_only_loopback_gets_in(tokens: dict[str, str]) -> None:
    access = DebugAccess(None, "istio-system")
    assert (
        status(await access(request("/debug/syncz", token=tokens["istio-system/istioctl"]))) == 401
    )
    assert await access(request("/debug/syncz", "127.0.0.1")) == EVERYTHING


def test_namespaced_callers_see_only_their_namespace() -> None:
    caller = DebugCaller("bookinfo")
    assert caller.may_read("/debug/config_dump") and not caller.may_read("/debug/syncz")
    assert EVERYTHING.may_read("/debug/syncz")
