"""AuthorizationPolicy → RBAC on waypoint chains (waypoint.md §7)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.translate.waypoint.fixtures import (
    REVIEWS,
    Doc,
    find,
    gateway,
    policy,
    shop,
    snapshot,
    to_service,
    to_waypoint,
    translate,
)
from xds import type_urls

DB = "inbound-vip|5432|tcp|db.shop.svc.cluster.local"
PEER = "io.istio.peer_principal"


def _chains(*docs: Doc, mode_docs: list[Doc] | None = None) -> dict[str, Any]:
    listeners = snapshot(translate(*(mode_docs or shop()), *docs))[type_urls.LISTENER]
    return {chain["name"]: chain for chain in listeners["main_internal"]["filter_chains"]}


def _http_rbac(chain: dict[str, Any]) -> dict[str, Any]:
    hcm = chain["filters"][-1]["typed_config"]
    return {f["name"]: f["typed_config"] for f in hcm["http_filters"] if ".rbac." in f["name"]}


def _network_rbac(chain: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["typed_config"] for f in chain["filters"] if ".rbac." in f["name"]}


def _allow(rules: list[Doc], target: Doc | None = None, action: str = "ALLOW") -> Doc:
    return policy("shop", "p", {**(target or to_waypoint()), "action": action, "rules": rules})


def test_no_policy_no_rbac_filter() -> None:
    chains = _chains()
    assert _http_rbac(chains[REVIEWS]) == {}
    assert _network_rbac(chains[DB]) == {}


def test_allow_by_principal_uses_the_forwarded_peer_identity() -> None:
    rules = [{"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/client"]}}]}]
    rbac = _http_rbac(_chains(_allow(rules))[REVIEWS])["envoy.filters.http.rbac.allow"]
    assert rbac["rules"].get("action", "ALLOW") == "ALLOW"  # the default is not serialized
    assert rbac["rules"]["policies"] == {
        "ns[shop]-policy[p]-rule[0]": {
            "permissions": [{"any": True}],
            "principals": [
                {
                    "filter_state": {
                        "key": PEER,
                        "string_match": {"exact": "spiffe://cluster.local/ns/shop/sa/client"},
                    }
                }
            ],
        }
    }


SOURCE_CASES = [
    pytest.param(
        {"principals": ["*"]},
        {"filter_state": {"key": PEER, "string_match": {"safe_regex": {"regex": ".+"}}}},
        id="any-principal",
    ),
    pytest.param(
        {"principals": ["cluster.local/ns/shop/*"]},
        {
            "filter_state": {
                "key": PEER,
                "string_match": {"prefix": "spiffe://cluster.local/ns/shop/"},
            }
        },
        id="principal-prefix",
    ),
    pytest.param(
        {"namespaces": ["front"]},
        {
            "filter_state": {
                "key": PEER,
                "string_match": {"safe_regex": {"regex": "spiffe://[^/]+/ns/front/.*"}},
            }
        },
        id="namespace",
    ),
    pytest.param(
        {"serviceAccounts": ["front/web"]},
        {
            "filter_state": {
                "key": PEER,
                "string_match": {"safe_regex": {"regex": "spiffe://[^/]+/ns/front/sa/web"}},
            }
        },
        id="service-account",
    ),
    pytest.param(
        {"ipBlocks": ["10.1.0.0/16"]},
        {
            "filter_state": {
                "key": "envoy.filters.listener.original_dst.remote_ip",
                "address_match": {"ranges": [{"address_prefix": "10.1.0.0", "prefix_len": 16}]},
            }
        },
        id="ip-block",
    ),
    pytest.param(
        {"remoteIpBlocks": ["192.0.2.7"]},
        {"remote_ip": {"address_prefix": "192.0.2.7", "prefix_len": 32}},
        id="remote-ip-block",
    ),
    pytest.param(
        {"notNamespaces": ["evil"]},
        {
            "not_id": {
                "filter_state": {
                    "key": PEER,
                    "string_match": {"safe_regex": {"regex": "spiffe://[^/]+/ns/evil/.*"}},
                }
            }
        },
        id="not-namespace",
    ),
]


@pytest.mark.parametrize(("source", "principal"), SOURCE_CASES)
def test_sources(source: Doc, principal: Doc) -> None:
    rbac = _http_rbac(_chains(_allow([{"from": [{"source": source}]}]))[REVIEWS])
    policies = rbac["envoy.filters.http.rbac.allow"]["rules"]["policies"]
    assert policies["ns[shop]-policy[p]-rule[0]"]["principals"] == [principal]


OPERATION_CASES = [
    pytest.param(
        {"methods": ["GET"]},
        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
        id="method",
    ),
    pytest.param(
        {"paths": ["/api/*"]}, {"url_path": {"path": {"prefix": "/api/"}}}, id="path-prefix"
    ),
    pytest.param(
        {"paths": ["/items/{*}/parts/{**}"]},
        {
            "uri_template": {
                "name": "uri-template",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template."
                    "v3.UriTemplateMatchConfig",
                    # Envoy's own syntax (istiod's rewrite); "{*}" would abort Envoy.
                    "path_template": "/items/*/parts/**",
                },
            }
        },
        id="path-template",
    ),
    pytest.param({"ports": ["9080"]}, {"destination_port": 9080}, id="port"),
    pytest.param(
        {"hosts": ["reviews.shop.svc.cluster.local"]},
        {
            "header": {
                "name": ":authority",
                "string_match": {
                    "safe_regex": {"regex": r"(?i)reviews\.shop\.svc\.cluster\.local(:[0-9]+)?"}
                },
            }
        },
        id="host",
    ),
    pytest.param(
        {"methods": ["GET", "HEAD"]},
        {
            "or_rules": {
                "rules": [
                    {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                    {"header": {"name": ":method", "string_match": {"exact": "HEAD"}}},
                ]
            }
        },
        id="methods-or",
    ),
]


@pytest.mark.parametrize(("operation", "permission"), OPERATION_CASES)
def test_operations(operation: Doc, permission: Doc) -> None:
    rbac = _http_rbac(_chains(_allow([{"to": [{"operation": operation}]}]))[REVIEWS])
    policies = rbac["envoy.filters.http.rbac.allow"]["rules"]["policies"]
    assert policies["ns[shop]-policy[p]-rule[0]"]["permissions"] == [permission]


def test_when_conditions() -> None:
    rules = [
        {
            "when": [
                {"key": "request.headers[X-Team]", "values": ["blue"]},
                {"key": "source.namespace", "values": ["front"]},
                {"key": "destination.port", "notValues": ["9999"]},
            ]
        }
    ]
    rbac = _http_rbac(_chains(_allow(rules))[REVIEWS])
    entry = rbac["envoy.filters.http.rbac.allow"]["rules"]["policies"]["ns[shop]-policy[p]-rule[0]"]
    assert entry["permissions"] == [
        {
            "and_rules": {
                "rules": [
                    {"header": {"name": "x-team", "string_match": {"exact": "blue"}}},
                    {"not_rule": {"destination_port": 9999}},
                ]
            }
        }
    ]
    assert entry["principals"] == [
        {
            "filter_state": {
                "key": PEER,
                "string_match": {"safe_regex": {"regex": "spiffe://[^/]+/ns/front/.*"}},
            }
        }
    ]


def test_allow_with_nothing_that_matches_denies_everything() -> None:
    rbac = _http_rbac(_chains(_allow([]))[REVIEWS])["envoy.filters.http.rbac.allow"]
    assert rbac["rules"].get("policies", {}) == {}
    assert rbac["rules"].get("action", "ALLOW") == "ALLOW"


def test_deny_audit_and_allow_are_separate_filters_in_that_order() -> None:
    docs = [
        policy("shop", "a", {**to_waypoint(), "action": "AUDIT", "rules": [{}]}),
        policy(
            "shop",
            "d",
            {
                **to_waypoint(),
                "action": "DENY",
                "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}],
            },
        ),
        policy("shop", "l", {**to_waypoint(), "action": "ALLOW", "rules": [{}]}),
    ]
    rbac = _http_rbac(_chains(*docs)[REVIEWS])
    assert list(rbac) == [
        "envoy.filters.http.rbac.audit",
        "envoy.filters.http.rbac.deny",
        "envoy.filters.http.rbac.allow",
    ]
    assert rbac["envoy.filters.http.rbac.audit"]["rules"]["action"] == "LOG"
    assert rbac["envoy.filters.http.rbac.deny"]["rules"]["action"] == "DENY"


def test_service_policies_apply_only_to_that_service() -> None:
    docs = [policy("shop", "only-reviews", {**to_service("reviews"), "rules": [{}]})]
    chains = _chains(*docs)
    assert "envoy.filters.http.rbac.allow" in _http_rbac(chains[REVIEWS])
    assert _http_rbac(chains["inbound-vip|7070|http|ratings.shop.svc.cluster.local"]) == {}
    assert _network_rbac(chains[DB]) == {}
    # Direct-to-pod chains have no service: only waypoint-wide policies.
    assert _http_rbac(chains["direct-http"]) == {}


def test_waypoint_policies_apply_everywhere_including_direct_chains() -> None:
    chains = _chains(_allow([{}]))
    for name in (REVIEWS, "direct-http"):
        assert "envoy.filters.http.rbac.allow" in _http_rbac(chains[name]), name
    for name in (DB, "direct-tcp"):
        assert "envoy.filters.network.rbac.allow" in _network_rbac(chains[name]), name


def test_selector_policies_and_other_targets_are_ignored() -> None:
    docs = [
        policy("shop", "sel", {"selector": {"matchLabels": {"app": "reviews"}}, "rules": [{}]}),
        policy("shop", "elsewhere", {**to_waypoint("other-waypoint"), "rules": [{}]}),
        policy("other", "foreign", {**to_service("reviews"), "rules": [{}]}),
    ]
    assert _http_rbac(_chains(*docs)[REVIEWS]) == {}


def test_http_fields_on_tcp_chains_fail_closed() -> None:
    rules = [{"to": [{"operation": {"methods": ["GET"]}}]}]
    allow = _network_rbac(_chains(_allow(rules))[DB])["envoy.filters.network.rbac.allow"]
    assert allow["rules"].get("policies", {}) == {}  # the ALLOW rule can never match
    deny = _network_rbac(_chains(_allow(rules, action="DENY"))[DB])[
        "envoy.filters.network.rbac.deny"
    ]
    # The DENY rule loses the field it cannot check, so it denies more, not less.
    assert deny["rules"]["policies"]["ns[shop]-policy[p]-rule[0]"] == {
        "permissions": [{"any": True}],
        "principals": [{"any": True}],
    }


def _claim(*path: str, **value: Any) -> Doc:
    return {
        "sourced_metadata": {
            "metadata_matcher": {
                "filter": "envoy.filters.http.jwt_authn",
                "path": [{"key": "payload"}, *({"key": key} for key in path)],
                "value": value,
            }
        }
    }


def _cut(issuer: Doc, subject: Doc) -> Doc:
    return {
        "and_ids": {
            "ids": [_claim("iss", string_match=issuer), _claim("sub", string_match=subject)]
        }
    }


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        pytest.param("*", _claim("iss", present_match=True), id="any"),
        pytest.param(
            "https://idp.example/alice",
            # Both claims may hold "/": every place the value could be cut is tried.
            {
                "or_ids": {
                    "ids": [
                        _cut({"exact": "https:"}, {"exact": "/idp.example/alice"}),
                        _cut({"exact": "https:/"}, {"exact": "idp.example/alice"}),
                        _cut({"exact": "https://idp.example"}, {"exact": "alice"}),
                    ]
                }
            },
            id="exact",
        ),
        pytest.param(
            "idp/*",
            {
                "or_ids": {
                    "ids": [
                        _claim("iss", string_match={"prefix": "idp/"}),
                        _cut({"exact": "idp"}, {"safe_regex": {"regex": ".*"}}),
                    ]
                }
            },
            id="issuer-prefix",
        ),
        pytest.param(
            "*/bob",
            {
                "or_ids": {
                    "ids": [
                        _claim("sub", string_match={"suffix": "/bob"}),
                        _cut({"safe_regex": {"regex": ".*"}}, {"exact": "bob"}),
                    ]
                }
            },
            id="subject-suffix",
        ),
    ],
)
def test_request_principals_match_the_validated_token(principal: str, expected: Doc) -> None:
    rules = [{"from": [{"source": {"requestPrincipals": [principal]}}]}]
    allow = _http_rbac(_chains(_allow(rules))[REVIEWS])["envoy.filters.http.rbac.allow"]
    [rule] = allow["rules"]["policies"].values()
    assert rule["principals"] == [expected]


def test_claims_conditions_match_strings_and_lists() -> None:
    rules = [{"when": [{"key": "request.auth.claims[groups][team]", "values": ["blue"]}]}]
    allow = _http_rbac(_chains(_allow(rules))[REVIEWS])["envoy.filters.http.rbac.allow"]
    [rule] = allow["rules"]["policies"].values()
    blue = {"exact": "blue"}
    assert rule["principals"] == [
        {
            "or_ids": {
                "ids": [
                    _claim("groups", "team", string_match=blue),
                    _claim("groups", "team", list_match={"one_of": {"string_match": blue}}),
                ]
            }
        }
    ]


def test_jwt_conditions_never_match_on_tcp_chains() -> None:
    """No token is read on a TCP chain: an ALLOW that needs one allows nothing there."""
    rules = [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]
    allow = _network_rbac(_chains(_allow(rules))[DB])["envoy.filters.network.rbac.allow"]
    assert allow["rules"].get("policies", {}) == {}


@pytest.mark.parametrize("value", ["true", "True", "1", "t"])
def test_dry_run_goes_to_shadow_rules(value: str) -> None:
    """The annotation is read as istiod reads it (Go's ParseBool), as for ztunnel."""
    doc = policy(
        "shop", "p", {**to_waypoint(), "rules": [{}]}, annotations={"istio.io/dry-run": value}
    )
    rbac = _http_rbac(_chains(doc)[REVIEWS])["envoy.filters.http.rbac.allow"]
    assert "rules" not in rbac  # nothing enforced
    assert rbac["shadow_rules_stat_prefix"] == "istio_dry_run_allow_"
    assert "ns[shop]-policy[p]-rule[0]" in rbac["shadow_rules"]["policies"]


@pytest.mark.parametrize("value", ["yes", "on", "TRUE ", ""])
def test_other_dry_run_values_are_enforced(value: str) -> None:
    doc = policy(
        "shop", "p", {**to_waypoint(), "rules": [{}]}, annotations={"istio.io/dry-run": value}
    )
    rbac = _http_rbac(_chains(doc)[REVIEWS])["envoy.filters.http.rbac.allow"]
    assert "shadow_rules" not in rbac and "ns[shop]-policy[p]-rule[0]" in str(rbac["rules"])


def test_custom_without_a_provider_denies_what_it_matches() -> None:
    doc = policy(
        "shop",
        "ext",
        {**to_waypoint(), "action": "CUSTOM", "provider": {"name": "opa"}, "rules": [{}]},
    )
    rbac = _http_rbac(_chains(doc)[REVIEWS])
    assert rbac["envoy.filters.http.rbac.deny"]["rules"]["action"] == "DENY"


def test_sandwich_mode_cannot_see_identities() -> None:
    sandwich = [
        *shop()[:1],
        gateway(
            "shop",
            cls="istio",
            labels={"istio.io/dataplane-mode": "ambient"},
            listeners=[{"name": "http", "port": 9080, "protocol": "HTTP"}],
        ),
        *shop()[2:],
    ]
    rules = [
        {"from": [{"source": {"principals": ["cluster.local/ns/shop/sa/client"]}}]},
        {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]},
    ]
    listeners = snapshot(translate(*sandwich, _allow(rules)))[type_urls.LISTENER]
    rbac = find(listeners, lambda d: d.get("name") == "envoy.filters.http.rbac.allow")
    policies = rbac[0]["typed_config"]["rules"]["policies"]
    # The identity rule is gone (fail closed); the address is the direct peer.
    assert list(policies) == ["ns[shop]-policy[p]-rule[1]"]
    assert policies["ns[shop]-policy[p]-rule[1]"]["principals"] == [
        {"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}
    ]
