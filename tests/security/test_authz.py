"""Which identity a caller gets: its own, or (for node agents) a pod's on its node."""

from __future__ import annotations

import pytest

from xds.security.authn import Caller
from xds.security.authz import CertificateAuthorizer, PermissionDeniedError, authorize_proxy
from xds.security.identity import Identity

from .support import TD

APP = Identity(TD, "default", "app")
DB = Identity(TD, "data", "db")
ZTUNNEL = Identity(TD, "istio-system", "ztunnel")


class Pods:
    def __init__(self, placement: dict[str, set[Identity]]) -> None:
        self._placement = placement

    def has_pod(self, identity: Identity, node: str) -> bool:
        return identity in self._placement.get(node, set())


AUTHORIZER = CertificateAuthorizer(TD, pods=Pods({"node-a": {APP}, "node-b": {DB}}))


def test_own_identity_ignores_the_csr() -> None:
    caller = Caller(APP, "tokens-file")
    assert AUTHORIZER.identity_for(caller, None, csr_identity=DB) == APP


def test_asking_for_yourself_by_impersonation_is_fine() -> None:
    assert AUTHORIZER.identity_for(Caller(APP, "t"), APP.uri) == APP


def test_node_agent_may_impersonate_a_pod_on_its_node() -> None:
    assert AUTHORIZER.identity_for(Caller(ZTUNNEL, "t", node="node-a"), APP.uri) == APP


@pytest.mark.parametrize(
    ("caller", "target", "message"),
    [
        (Caller(APP, "t", node="node-a"), DB.uri, "default/app is not a trusted node account"),
        (
            Caller(ZTUNNEL, "t", node="node-a"),
            DB.uri,
            "no pod with identity spiffe://cluster.local/ns/data/sa/db runs on node 'node-a'",
        ),
        (Caller(ZTUNNEL, "t"), APP.uri, "not bound to a node"),
        (
            Caller(ZTUNNEL, "t", node="node-a"),
            "spiffe://other.td/ns/default/sa/app",
            "outside trust domain",
        ),
        (Caller(ZTUNNEL, "t", node="node-a"), "not-a-uri", "not a spiffe:// URI"),
    ],
)
def test_impersonation_refusals_say_why(caller: Caller, target: str, message: str) -> None:
    with pytest.raises(PermissionDeniedError, match=message):
        AUTHORIZER.identity_for(caller, target)


def test_no_pod_inventory_means_no_impersonation() -> None:
    with pytest.raises(PermissionDeniedError, match="no pod inventory"):
        CertificateAuthorizer(TD).identity_for(Caller(ZTUNNEL, "t", node="n"), APP.uri)


def test_trusted_accounts_are_configurable() -> None:
    authorizer = CertificateAuthorizer.with_accounts(
        TD, ["kube-system/ztunnel", " "], Pods({"n": {APP}})
    )
    assert authorizer.trusted_node_accounts == frozenset({"kube-system/ztunnel"})
    node_agent = Caller(Identity(TD, "kube-system", "ztunnel"), "t", node="n")
    assert authorizer.identity_for(node_agent, APP.uri) == APP
    with pytest.raises(PermissionDeniedError):
        authorizer.identity_for(Caller(ZTUNNEL, "t", node="n"), APP.uri)


def test_anonymous_dev_callers_get_what_the_csr_asks_for() -> None:
    anonymous = Caller(None, "insecure-dev")
    assert AUTHORIZER.identity_for(anonymous, None, csr_identity=DB) == DB
    assert AUTHORIZER.identity_for(anonymous, APP.uri, csr_identity=DB) == APP
    with pytest.raises(PermissionDeniedError, match="one spiffe:// URI SAN"):
        AUTHORIZER.identity_for(anonymous, None, csr_identity=None)
    with pytest.raises(PermissionDeniedError, match="outside trust domain"):
        AUTHORIZER.identity_for(anonymous, None, Identity("other.td", "a", "b"))


@pytest.mark.parametrize(
    ("namespace", "service_account", "allowed"),
    [
        ("default", "app", True),
        ("", "", True),
        ("default", "", True),
        ("", "app", True),
        ("other", "app", False),
        ("default", "db", False),
    ],
)
def test_proxy_identity_check(namespace: str, service_account: str, allowed: bool) -> None:
    caller = Caller(APP, "tokens-file")
    if allowed:
        authorize_proxy(caller, namespace, service_account)
    else:
        with pytest.raises(PermissionDeniedError, match="authorization failed"):
            authorize_proxy(caller, namespace, service_account)
    authorize_proxy(Caller(None, "insecure-dev"), "other", "x")
