"""Parsers for AuthorizationPolicy and PeerAuthentication."""

from __future__ import annotations

from xds.model.frozen import FrozenMap, Labels
from xds.model.meta import ObjectMeta
from xds.model.parse.reader import Reader
from xds.model.security import (
    AuthorizationAction,
    AuthorizationPolicy,
    Condition,
    JwtHeader,
    JwtRule,
    MtlsMode,
    Operation,
    PeerAuthentication,
    PolicyTargetRef,
    RequestAuthentication,
    Rule,
    Source,
)


def read_workload_selector(spec: Reader, key: str) -> Labels | None:
    """An Istio ``WorkloadSelector`` (``{matchLabels}``): ``None`` when absent, which
    differs from present-but-empty."""
    if not spec.has(key):
        return None
    return spec.obj(key).string_map("matchLabels")


def _target_ref(ref: Reader) -> PolicyTargetRef:
    return PolicyTargetRef(
        kind=ref.required_string("kind"),
        name=ref.required_string("name"),
        group=ref.string("group"),
        namespace=ref.opt_string("namespace"),
    )


def _ports(operation: Reader, key: str) -> tuple[str, ...]:
    # The CRD types ports as strings; numbers written without quotes are
    # accepted too, since they can only mean the same port.
    result = []
    for item in operation.items(key):
        value = item.value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            item.fail("expected a port as a string")
        result.append(value)
    return tuple(result)


def _source(source: Reader) -> Source:
    return Source(
        principals=source.strings("principals"),
        not_principals=source.strings("notPrincipals"),
        request_principals=source.strings("requestPrincipals"),
        not_request_principals=source.strings("notRequestPrincipals"),
        namespaces=source.strings("namespaces"),
        not_namespaces=source.strings("notNamespaces"),
        ip_blocks=source.strings("ipBlocks"),
        not_ip_blocks=source.strings("notIpBlocks"),
        remote_ip_blocks=source.strings("remoteIpBlocks"),
        not_remote_ip_blocks=source.strings("notRemoteIpBlocks"),
        service_accounts=source.strings("serviceAccounts"),
        not_service_accounts=source.strings("notServiceAccounts"),
    )


def _operation(operation: Reader) -> Operation:
    return Operation(
        hosts=operation.strings("hosts"),
        not_hosts=operation.strings("notHosts"),
        ports=_ports(operation, "ports"),
        not_ports=_ports(operation, "notPorts"),
        methods=operation.strings("methods"),
        not_methods=operation.strings("notMethods"),
        paths=operation.strings("paths"),
        not_paths=operation.strings("notPaths"),
    )


def _rule(rule: Reader) -> Rule:
    return Rule(
        sources=tuple(_source(entry.obj("source")) for entry in rule.items("from")),
        operations=tuple(_operation(entry.obj("operation")) for entry in rule.items("to")),
        when=tuple(
            Condition(
                key=condition.required_string("key"),
                values=condition.strings("values"),
                not_values=condition.strings("notValues"),
            )
            for condition in rule.items("when")
        ),
    )


def target_refs(spec: Reader) -> tuple[PolicyTargetRef, ...]:
    """``targetRef`` and ``targetRefs``, in that order."""
    refs = [_target_ref(spec.obj("targetRef"))] if spec.has("targetRef") else []
    refs.extend(_target_ref(ref) for ref in spec.items("targetRefs"))
    return tuple(refs)


def parse_authorization_policy(doc: Reader, meta: ObjectMeta) -> AuthorizationPolicy:
    spec = doc.obj("spec")
    return AuthorizationPolicy(
        meta=meta,
        selector=read_workload_selector(spec, "selector"),
        target_refs=target_refs(spec),
        action=spec.enum("action", AuthorizationAction, AuthorizationAction.ALLOW),
        provider=spec.obj("provider").opt_string("name"),
        rules=tuple(_rule(rule) for rule in spec.items("rules")),
    )


def parse_peer_authentication(doc: Reader, meta: ObjectMeta) -> PeerAuthentication:
    spec = doc.obj("spec")
    port_modes: dict[int, MtlsMode] = {}
    for port, setting in spec.entries("portLevelMtls"):
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            setting.fail(f'expected a port number 1-65535 as the key, got "{port}"')
        port_modes[int(port)] = setting.enum("mode", MtlsMode, MtlsMode.UNSET)
    return PeerAuthentication(
        meta=meta,
        selector=read_workload_selector(spec, "selector"),
        mode=spec.obj("mtls").enum("mode", MtlsMode, MtlsMode.UNSET),
        port_level_mtls=FrozenMap(sorted(port_modes.items())),
    )


def _jwt_rule(rule: Reader) -> JwtRule:
    uri = rule.opt_string("jwksUri")
    if uri is not None and not uri.startswith(("http://", "https://")):
        rule.fail(f'expected an http:// or https:// URI, got "{uri}"', "jwksUri")
    return JwtRule(
        issuer=rule.required_string("issuer"),
        audiences=rule.strings("audiences"),
        jwks_uri=uri,
        jwks=rule.opt_string("jwks"),
        from_headers=tuple(
            JwtHeader(entry.required_string("name"), entry.string("prefix"))
            for entry in rule.items("fromHeaders")
        ),
        from_params=rule.strings("fromParams"),
        from_cookies=rule.strings("fromCookies"),
        output_payload_to_header=rule.opt_string("outputPayloadToHeader"),
        forward_original_token=rule.boolean("forwardOriginalToken"),
        output_claim_to_headers=tuple(
            (entry.required_string("header"), entry.required_string("claim"))
            for entry in rule.items("outputClaimToHeaders")
        ),
        timeout=rule.opt_duration("timeout"),
    )


def parse_request_authentication(doc: Reader, meta: ObjectMeta) -> RequestAuthentication:
    spec = doc.obj("spec")
    return RequestAuthentication(
        meta=meta,
        selector=read_workload_selector(spec, "selector"),
        target_refs=target_refs(spec),
        jwt_rules=tuple(_jwt_rule(rule) for rule in spec.items("jwtRules")),
    )
