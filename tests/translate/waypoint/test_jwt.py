"""RequestAuthentication on waypoints: Envoy's jwt_authn as istiod configures it."""

from __future__ import annotations

import json
from typing import Any

from tests.translate.waypoint.fixtures import (
    REVIEWS,
    Doc,
    meta,
    service,
    shop,
    snapshot,
    to_service,
    to_waypoint,
    translate,
)
from xds import type_urls

RATINGS = "inbound-vip|7070|http|ratings.shop.svc.cluster.local"
JWKS = '{"keys":[{"kty":"RSA","kid":"k1","e":"AQAB","n":"sXch"}]}'


def _authentication(name: str, target: Doc, *rules: Doc) -> Doc:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "RequestAuthentication",
        "metadata": meta("shop", name),
        "spec": {**target, "jwtRules": list(rules)},
    }


def _filters(*docs: Doc, chain: str = REVIEWS) -> list[Any]:
    listeners = snapshot(translate(*shop(), *docs))[type_urls.LISTENER]
    [found] = [c for c in listeners["main_internal"]["filter_chains"] if c["name"] == chain]
    filters: list[Any] = found["filters"][-1]["typed_config"]["http_filters"]
    return filters


def _jwt(*docs: Doc, chain: str = REVIEWS) -> dict[str, Any] | None:
    for item in _filters(*docs, chain=chain):
        if item["name"] == "envoy.filters.http.jwt_authn":
            config: dict[str, Any] = item["typed_config"]
            return config
    return None


def test_one_issuer_a_token_if_present_must_be_valid() -> None:
    rule = {
        "issuer": "https://idp.example",
        "audiences": ["shop"],
        "jwks": JWKS,
        "fromHeaders": [{"name": "x-token", "prefix": "Bearer "}],
        "fromParams": ["token"],
        "forwardOriginalToken": True,
        "outputPayloadToHeader": "x-payload",
        "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}],
    }
    config = _jwt(_authentication("jwt", to_waypoint(), rule))
    assert config == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            "origins-0": {
                "issuer": "https://idp.example",
                "audiences": ["shop"],
                "local_jwks": {"inline_string": JWKS},
                "forward": True,
                "from_headers": [{"name": "x-token", "value_prefix": "Bearer "}],
                "from_params": ["token"],
                "forward_payload_header": "x-payload",
                "payload_in_metadata": "payload",
                "normalize_payload_in_metadata": {},
                "claim_to_headers": [{"header_name": "x-user", "claim_name": "sub"}],
            }
        },
        "rules": [
            {
                "match": {"prefix": "/"},
                "requires": {
                    "requires_any": {
                        "requirements": [{"provider_name": "origins-0"}, {"allow_missing": {}}]
                    }
                },
            }
        ],
        "bypass_cors_preflight": True,
    }
    names = [item["name"] for item in _filters(_authentication("jwt", to_waypoint(), rule))]
    assert names.index("envoy.filters.http.jwt_authn") == 0  # before any authorization


def test_several_issuers_each_token_must_be_valid_or_one_suffices() -> None:
    first = {"issuer": "a", "jwks": JWKS}
    second = {"issuer": "b", "jwks": JWKS}
    config = _jwt(_authentication("jwt", to_waypoint(), first, second))
    assert config is not None
    either = [{"provider_name": "origins-0"}, {"provider_name": "origins-1"}]
    each = [
        {"requires_any": {"requirements": [{"provider_name": name}, {"allow_missing": {}}]}}
        for name in ("origins-0", "origins-1")
    ]
    assert config["rules"][0]["requires"] == {
        "requires_any": {"requirements": [*either, {"requires_all": {"requirements": each}}]}
    }


def test_keys_from_a_jwks_uri_are_fetched_through_the_hosts_cluster() -> None:
    keys = service("auth", "keys", "10.96.7.7", [{"name": "http", "port": 8080}])
    in_mesh = {"issuer": "a", "jwksUri": "http://keys.auth.svc.cluster.local:8080/jwks.json"}
    outside = {"issuer": "b", "jwksUri": "https://idp.example/.well-known/jwks.json"}
    config = _jwt(keys, _authentication("jwt", to_waypoint(), in_mesh, outside))
    assert config is not None
    providers = config["providers"]
    assert providers["origins-0"]["remote_jwks"] == {
        "http_uri": {
            "uri": "http://keys.auth.svc.cluster.local:8080/jwks.json",
            "cluster": "outbound|8080||keys.auth.svc.cluster.local",
            "timeout": "5s",
        },
        "cache_duration": "300s",
    }
    # Outside the mesh (no ServiceEntry): istiod's cluster name, which does not exist.
    assert providers["origins-1"]["remote_jwks"]["http_uri"]["cluster"] == (
        "outbound|443||idp.example"
    )
    clusters = snapshot(translate(*shop(), keys, _authentication("jwt", to_waypoint(), in_mesh)))
    assert "outbound|8080||keys.auth.svc.cluster.local" in clusters[type_urls.CLUSTER]


def test_a_services_request_authentication_is_only_on_its_chains() -> None:
    docs = [_authentication("jwt", to_service("reviews"), {"issuer": "a", "jwks": JWKS})]
    assert _jwt(*docs) is not None
    assert _jwt(*docs, chain=RATINGS) is None
    selector = _authentication("old", {"selector": {"matchLabels": {"app": "reviews"}}})
    selector["spec"]["jwtRules"] = [{"issuer": "a", "jwks": JWKS}]
    assert _jwt(selector) is None  # waypoints take targetRefs policies only, as istiod


def test_keys_envoy_would_refuse_become_a_key_nobody_holds() -> None:
    """Envoy refuses a whole listener over one provider without a usable key: such a
    provider gets a key no token is signed with (istiod's fake JWKS), so its tokens fail
    and everything else keeps working."""
    for jwks in ('{"keys":[]}', "not json", '{"keys":[{"kty":"RSA"}]}'):
        config = _jwt(_authentication("jwt", to_waypoint(), {"issuer": "a", "jwks": jwks}))
        assert config is not None
        keys = json.loads(config["providers"]["origins-0"]["local_jwks"]["inline_string"])
        assert [key["kid"] for key in keys["keys"]] == ["unusable"], jwks
