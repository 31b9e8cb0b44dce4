"""RequestAuthentication as Envoy's ``jwt_authn`` filter on waypoint HTTP chains.

istiod's conversion (``policy_applier.go``): one provider per JWT rule
(``origins-<i>``), a request without a token passes (AuthorizationPolicy decides),
a request with a token that no provider accepts is refused (401). The validated
payload goes to the dynamic metadata ``envoy.filters.http.jwt_authn`` → ``payload``,
where the RBAC filters read ``requestPrincipals`` and ``request.auth.*`` (``rbac.py``).

Keys come from ``jwks`` inline, or from ``jwksUri`` fetched by Envoy through the
cluster of that host in the mesh (for a host outside the mesh, a ServiceEntry gives
it one; otherwise the cluster is missing and tokens cannot be verified, as istiod's
remote-JWKS mode).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

from envoy.config.core.v3 import base_pb2, http_uri_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import empty_pb2

from xds.model.security import JwtRule, RequestAuthentication
from xds.translate.waypoint import names, routes
from xds.translate.waypoint.inputs import ServiceInfo, WaypointConfig
from xds.translate.waypoint.protos import duration, typed
from xds.translate.waypoint.targeting import targets_service, targets_waypoint

FILTER_NAME = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
"""Where a validated token's claims go, under the filter's metadata namespace."""
# A public key nobody holds the private half of (generated once, the private key
# discarded): what a provider gets when its keys are unusable, so that Envoy accepts
# the config and every token of that issuer fails (istiod's "fake JWKS").
_NOBODYS_MODULUS = (
    "0uqoT52au7CAe98ZBC-fAYWQxviWSeKuo1Y9_EnyKao-or9ExGPGIGjCPwtGBO54OLR8kiPyieSRth_L"
    "XCbPdIRCd36UlisPpocaS6eLgDyUAonKIoGEyJSsav2EAWEKlMrd1LiW9Ny5xumBJXlxOJvCLHZXFq2x"
    "LNFUuoL9ov6-6zKduaYPwtD0ZNJsSDfnt8MAvDrepbTHEG6DUYNwVv-8w2Ugp0GIjgJN9b4LtdFg0RLT"
    "OHDLNBln3MX2yrcVAgfpeelHqreHZsZlTjN6R4jQUncZ0XS6I_Eh96KRQ-VTkQ9COcoXJNMFeCroj8FH"
    "YA-DDUxTiYhYNjcfNsOjww"
)
_UNUSABLE_KEYS_JWKS = json.dumps(
    {
        "keys": [
            {"kty": "RSA", "alg": "RS256", "kid": "unusable", "e": "AQAB", "n": _NOBODYS_MODULUS}
        ]
    }
)
_JWKS_CACHE = timedelta(minutes=5)
_JWKS_TIMEOUT = timedelta(seconds=5)


def jwks_hosts(authentications: Iterable[RequestAuthentication]) -> set[str]:
    """Hosts whose keys are fetched: the waypoint needs a cluster for each."""
    return {
        _uri_host_port(rule.jwks_uri)[0]
        for authentication in authentications
        for rule in authentication.jwt_rules
        if rule.jwks_uri and not rule.jwks
    }


def attached(config: WaypointConfig, service: ServiceInfo | None) -> list[RequestAuthentication]:
    """The RequestAuthentications of a chain: waypoint-wide ones, plus the service's own."""
    found = [
        authentication
        for authentication in config.request_authentications
        if targets_waypoint(authentication, config.identity)
        or (service is not None and targets_service(authentication, service))
    ]
    return sorted(found, key=lambda item: (item.namespace, item.name))


def http_filters(config: WaypointConfig, service: ServiceInfo | None) -> list[hcm_pb2.HttpFilter]:
    """The ``jwt_authn`` filter of a chain, if any RequestAuthentication applies."""
    rules = [rule for item in attached(config, service) for rule in item.jwt_rules]
    if not rules:
        return []
    providers: dict[str, jwt_pb2.JwtProvider] = {}
    # Per provider: its token if one is there (AND of these)...
    each: list[jwt_pb2.JwtRequirement] = []
    # ...or simply one valid token (providers sharing a location).
    any_of: list[jwt_pb2.JwtRequirement] = []
    for index, rule in enumerate(rules):
        name = f"origins-{index}"
        providers[name] = _provider(config, rule)
        one = jwt_pb2.JwtRequirement(provider_name=name)
        each.append(
            jwt_pb2.JwtRequirement(
                requires_any=jwt_pb2.JwtRequirementOrList(
                    requirements=[one, jwt_pb2.JwtRequirement(allow_missing=empty_pb2.Empty())]
                )
            )
        )
        any_of.append(one)
    if len(each) == 1:
        requires = each[0]
    else:
        all_present = jwt_pb2.JwtRequirement(
            requires_all=jwt_pb2.JwtRequirementAndList(requirements=each)
        )
        requires = jwt_pb2.JwtRequirement(
            requires_any=jwt_pb2.JwtRequirementOrList(requirements=[*any_of, all_present])
        )
    authentication = jwt_pb2.JwtAuthentication(
        providers=providers,
        rules=[
            jwt_pb2.RequirementRule(
                match=route_components_pb2.RouteMatch(prefix="/"), requires=requires
            )
        ],
        bypass_cors_preflight=True,
    )
    return [hcm_pb2.HttpFilter(name=FILTER_NAME, typed_config=typed(authentication))]


def _provider(config: WaypointConfig, rule: JwtRule) -> jwt_pb2.JwtProvider:
    provider = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=rule.audiences,
        forward=rule.forward_original_token,
        forward_payload_header=rule.output_payload_to_header or "",
        payload_in_metadata=PAYLOAD_KEY,
        from_headers=[
            jwt_pb2.JwtHeader(name=header.name, value_prefix=header.prefix)
            for header in rule.from_headers
        ],
        from_params=rule.from_params,
        from_cookies=rule.from_cookies,
        claim_to_headers=[
            jwt_pb2.JwtClaimToHeader(header_name=header, claim_name=claim)
            for header, claim in rule.output_claim_to_headers
        ],
    )
    provider.normalize_payload_in_metadata.SetInParent()
    if rule.jwks or not rule.jwks_uri:
        keys = rule.jwks if rule.jwks and usable_jwks(rule.jwks) else _UNUSABLE_KEYS_JWKS
        provider.local_jwks.CopyFrom(base_pb2.DataSource(inline_string=keys))
        return provider
    host, port = _uri_host_port(rule.jwks_uri)
    provider.remote_jwks.http_uri.CopyFrom(
        http_uri_pb2.HttpUri(
            uri=rule.jwks_uri,
            cluster=_cluster(config, host, port),
            timeout=duration(rule.timeout or _JWKS_TIMEOUT),
        )
    )
    provider.remote_jwks.cache_duration.CopyFrom(duration(_JWKS_CACHE))
    return provider


def usable_jwks(text: str) -> bool:
    """Whether Envoy would take ``text`` as a key set: JSON with at least one key, each
    with its parameters. Envoy refuses the whole listener otherwise, so an unusable
    inline ``jwks`` becomes a key nobody can sign for instead (its tokens fail)."""
    try:
        document = json.loads(text)
    except ValueError:
        return False
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        return False
    required = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "oct": ("k",), "OKP": ("crv", "x")}
    return all(
        isinstance(key, dict)
        and key.get("kty") in required
        and all(isinstance(key.get(field), str) for field in required[key["kty"]])
        for key in keys
    )


def _cluster(config: WaypointConfig, host: str, port: int) -> str:
    if config.service(host) is None:
        return names.outbound_cluster(port, host)  # istiod's name: fetching fails until it exists
    return routes.RouteBuilder.cluster_of(config, host, port)


def _uri_host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default
