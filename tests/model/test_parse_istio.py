"""Parsing of Istio kinds: AuthorizationPolicy, PeerAuthentication, ServiceEntry,
WorkloadEntry, VirtualService, DestinationRule."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_network

import pytest
from yaml import safe_load as load

from xds.model import ManifestError, parse_object
from xds.model.frozen import FrozenMap
from xds.model.networking import (
    AllocatedAddress,
    ConsistentHash,
    Destination,
    DestinationRule,
    Fault,
    FaultAbort,
    FaultDelay,
    HeaderOperations,
    Headers,
    Location,
    Redirect,
    RegexRewrite,
    Resolution,
    Retries,
    Rewrite,
    RouteDestination,
    ServiceEntry,
    ServiceEntryPort,
    StringMatch,
    StringMatchType,
    TrafficPolicy,
    VirtualService,
    WorkloadEndpoint,
    WorkloadEntry,
)
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


def test_l4_authorization_policy() -> None:
    policy = parse_object(
        load("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: ratings, namespace: bookinfo, annotations: {istio.io/dry-run: "true"}}
        spec:
          selector: {matchLabels: {app: ratings}}
          action: DENY
          rules:
          - from:
            - source:
                principals: [cluster.local/ns/bookinfo/sa/bookinfo-reviews]
                notPrincipals: ["*/sa/bad"]
                requestPrincipals: [issuer/subject]
                notRequestPrincipals: [x]
                namespaces: [bookinfo]
                notNamespaces: [kube-system]
                ipBlocks: [10.0.0.0/8]
                notIpBlocks: [10.1.0.0/16]
                remoteIpBlocks: [1.2.3.4]
                notRemoteIpBlocks: [5.6.7.8]
                serviceAccounts: [bookinfo/reviews]
                notServiceAccounts: [other]
            - source: {namespaces: [ns2]}
            to:
            - operation:
                hosts: [a.example]
                notHosts: [b.example]
                ports: ["9080", 9090, http]
                notPorts: ["22"]
                methods: [GET]
                notMethods: [DELETE]
                paths: [/api/*]
                notPaths: [/admin]
            when:
            - {key: source.ip, values: [10.0.0.1], notValues: [10.0.0.2]}
          - {}
    """)
    )
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.selector == {"app": "ratings"}
    assert policy.target_refs == ()
    assert policy.action is AuthorizationAction.DENY
    assert policy.provider is None
    rule, empty = policy.rules
    assert rule.sources == (
        Source(
            principals=("cluster.local/ns/bookinfo/sa/bookinfo-reviews",),
            not_principals=("*/sa/bad",),
            request_principals=("issuer/subject",),
            not_request_principals=("x",),
            namespaces=("bookinfo",),
            not_namespaces=("kube-system",),
            ip_blocks=("10.0.0.0/8",),
            not_ip_blocks=("10.1.0.0/16",),
            remote_ip_blocks=("1.2.3.4",),
            not_remote_ip_blocks=("5.6.7.8",),
            service_accounts=("bookinfo/reviews",),
            not_service_accounts=("other",),
        ),
        Source(namespaces=("ns2",)),
    )
    # Ports stay strings, invalid ones included: translation drops them, as upstream does.
    assert rule.operations == (
        Operation(
            hosts=("a.example",),
            not_hosts=("b.example",),
            ports=("9080", "9090", "http"),
            not_ports=("22",),
            methods=("GET",),
            not_methods=("DELETE",),
            paths=("/api/*",),
            not_paths=("/admin",),
        ),
    )
    assert rule.when == (Condition("source.ip", ("10.0.0.1",), ("10.0.0.2",)),)
    assert empty == Rule()


def test_waypoint_authorization_policy() -> None:
    policy = parse_object(
        load("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: viewer, namespace: bookinfo}
        spec:
          targetRef: {kind: Service, group: "", name: productpage}
          targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
          action: CUSTOM
          provider: {name: ext-authz}
    """)
    )
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.selector is None
    assert policy.target_refs == (
        PolicyTargetRef("Service", "productpage"),
        PolicyTargetRef("Gateway", "waypoint", "gateway.networking.k8s.io"),
    )
    assert policy.action is AuthorizationAction.CUSTOM
    assert policy.provider == "ext-authz"
    assert policy.rules == ()


@pytest.mark.parametrize(
    ("spec", "selector"),
    [("{}", None), ("{selector: {}}", FrozenMap()), ("{selector: {matchLabels: {}}}", FrozenMap())],
)
def test_absent_and_empty_selectors_differ(spec: str, selector: object) -> None:
    policy = parse_object(
        load(f"""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {{name: p, namespace: ns}}
        spec: {spec}
    """)
    )
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.selector == selector
    assert policy.action is AuthorizationAction.ALLOW


def test_peer_authentication() -> None:
    policy = parse_object(
        load("""
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: ratings, namespace: bookinfo}
        spec:
          selector: {matchLabels: {app: ratings}}
          mtls: {mode: STRICT}
          portLevelMtls:
            "9090": {mode: PERMISSIVE}
            8080: {mode: DISABLE}
            7070: {}
    """)
    )
    assert isinstance(policy, PeerAuthentication)
    assert policy.mode is MtlsMode.STRICT
    assert policy.has_workload_selector
    assert policy.port_level_mtls == {
        7070: MtlsMode.UNSET,
        8080: MtlsMode.DISABLE,
        9090: MtlsMode.PERMISSIVE,
    }
    assert list(policy.port_level_mtls) == [7070, 8080, 9090]  # sorted by port


def test_request_authentication() -> None:
    obj = parse_object(
        load("""
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {name: jwt, namespace: shop}
        spec:
          targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: waypoint}]
          jwtRules:
          - issuer: https://idp.example
            audiences: [shop]
            jwksUri: https://idp.example/jwks.json
            fromHeaders: [{name: x-token, prefix: "Bearer "}]
            fromParams: [token]
            fromCookies: [session]
            outputPayloadToHeader: x-payload
            forwardOriginalToken: true
            outputClaimToHeaders: [{header: x-user, claim: sub}]
            timeout: 2s
    """)
    )
    assert isinstance(obj, RequestAuthentication)
    assert obj.selector is None and obj.target_refs[0].name == "waypoint"
    assert obj.jwt_rules == (
        JwtRule(
            issuer="https://idp.example",
            audiences=("shop",),
            jwks_uri="https://idp.example/jwks.json",
            from_headers=(JwtHeader("x-token", "Bearer "),),
            from_params=("token",),
            from_cookies=("session",),
            output_payload_to_header="x-payload",
            forward_original_token=True,
            output_claim_to_headers=(("x-user", "sub"),),
            timeout=timedelta(seconds=2),
        ),
    )


def test_peer_authentication_defaults() -> None:
    policy = parse_object(
        load("""
        {apiVersion: security.istio.io/v1beta1, kind: PeerAuthentication,
         metadata: {name: default, namespace: istio-system}, spec: {}}
    """)
    )
    assert isinstance(policy, PeerAuthentication)
    assert (policy.mode, policy.selector, policy.has_workload_selector) == (
        MtlsMode.UNSET,
        None,
        False,
    )


def test_service_entry() -> None:
    entry = parse_object(
        load("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: external, namespace: ns}
        spec:
          hosts: [api.example.com, "*.example.org"]
          addresses: [192.0.2.10, 198.51.100.7/24, "2001:db8::1"]
          ports:
          - {number: 443, name: https, protocol: HTTPS}
          - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
          location: MESH_INTERNAL
          resolution: STATIC
          endpoints:
          - address: 10.1.0.5
            ports: {http: 18080}
            labels: {app: ext}
            network: net1
            locality: us-east/zone-a
            weight: 3
            serviceAccount: ext-sa
          - {address: ext.internal}
          subjectAltNames: [spiffe://cluster.local/ns/ns/sa/ext]
          exportTo: ["."]
        status:
          addresses: [{host: api.example.com, value: 240.240.0.1}]
    """)
    )
    assert isinstance(entry, ServiceEntry)
    assert entry.hosts == ("api.example.com", "*.example.org")
    assert entry.addresses == (
        ip_network("192.0.2.10/32"),
        ip_network("198.51.100.0/24"),
        ip_network("2001:db8::1/128"),
    )
    assert entry.ports == (
        ServiceEntryPort(443, "https", "HTTPS", 0),
        ServiceEntryPort(80, "http", "HTTP", 8080),
    )
    assert entry.location is Location.MESH_INTERNAL
    assert entry.resolution is Resolution.STATIC
    assert entry.endpoints == (
        WorkloadEndpoint(
            address="10.1.0.5",
            ports=FrozenMap({"http": 18080}),
            labels=FrozenMap({"app": "ext"}),
            network="net1",
            locality="us-east/zone-a",
            weight=3,
            service_account="ext-sa",
        ),
        WorkloadEndpoint(address="ext.internal"),
    )
    assert entry.workload_selector is None
    assert entry.subject_alt_names == ("spiffe://cluster.local/ns/ns/sa/ext",)
    assert entry.export_to == (".",)
    assert entry.status_addresses == (AllocatedAddress("api.example.com", "240.240.0.1"),)


def test_service_entry_defaults_and_selector() -> None:
    entry = parse_object(
        load("""
        apiVersion: networking.istio.io/v1beta1
        kind: ServiceEntry
        metadata: {name: internal, namespace: ns}
        spec: {hosts: [a.internal], workloadSelector: {labels: {app: a}}}
    """)
    )
    assert isinstance(entry, ServiceEntry)
    assert entry.location is Location.MESH_EXTERNAL
    assert entry.resolution is Resolution.NONE
    assert entry.workload_selector == {"app": "a"}


def test_workload_entry_labels_merge_with_metadata_winning() -> None:
    entry = parse_object(
        load("""
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata:
          name: vm1
          namespace: ns
          labels: {app: from-metadata}
          annotations: {istio.io/autoRegistrationGroup: vms}
        spec:
          address: 10.2.0.9
          labels: {app: from-spec, version: v1}
          ports: {http: 8080}
          network: vm-net
          locality: eu/west
          weight: 7
          serviceAccount: vm-sa
    """)
    )
    assert isinstance(entry, WorkloadEntry)
    assert entry.address == "10.2.0.9"
    assert entry.spec_labels == {"app": "from-spec", "version": "v1"}
    assert entry.workload_labels == {"app": "from-metadata", "version": "v1"}
    assert entry.ports == {"http": 8080}
    assert (entry.network, entry.locality, entry.weight, entry.service_account) == (
        "vm-net",
        "eu/west",
        7,
        "vm-sa",
    )


def test_virtual_service() -> None:
    service = parse_object(
        load("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          hosts: [reviews]
          gateways: [mesh]
          http:
          - name: jason
            match:
            - name: m1
              uri: {prefix: /api}
              method: {exact: GET}
              authority: {regex: "r.*"}
              scheme: {exact: http}
              headers: {end-user: {exact: jason}}
              withoutHeaders: {x-skip: {prefix: ""}}
              queryParams: {debug: {exact: "1"}}
              port: 9080
              sourceLabels: {app: productpage}
              gateways: [mesh]
              ignoreUriCase: true
            route:
            - destination: {host: reviews, subset: v2, port: {number: 9080}}
              weight: 80
              headers: {request: {set: {x-a: b}}}
            - destination: {host: reviews, subset: v3}
              weight: 20
            timeout: 1.5s
            retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset",
                      retryRemoteLocalities: true}
            fault:
              delay: {fixedDelay: 7s, percentage: {value: 0.1}}
              abort: {httpStatus: 500, percentage: {value: 100}}
            mirror: {host: shadow}
            mirrorPercentage: {value: 50}
            headers:
              request: {add: {x-req: "1"}, remove: [x-drop]}
              response: {set: {x-resp: "2"}}
            rewrite: {uri: /v1, authority: reviews.internal}
          - redirect: {uri: /new, authority: other, port: 8443, scheme: https, redirectCode: 308}
          - rewrite: {uriRegexRewrite: {match: "^/old(.*)", rewrite: "/new\\\\1"}}
            fault: {abort: {grpcStatus: UNAVAILABLE}}
            route: [{destination: {host: reviews}}]
    """)
    )
    assert isinstance(service, VirtualService)
    assert (service.hosts, service.gateways) == (("reviews",), ("mesh",))
    first, redirect, regex = service.http
    assert first.name == "jason"
    (match,) = first.match
    assert match.uri == StringMatch(StringMatchType.PREFIX, "/api")
    assert match.method == StringMatch(StringMatchType.EXACT, "GET")
    assert match.authority == StringMatch(StringMatchType.REGEX, "r.*")
    assert match.headers == {"end-user": StringMatch(StringMatchType.EXACT, "jason")}
    assert match.without_headers == {"x-skip": StringMatch(StringMatchType.PREFIX, "")}
    assert match.query_params == {"debug": StringMatch(StringMatchType.EXACT, "1")}
    assert (match.port, match.ignore_uri_case, match.gateways) == (9080, True, ("mesh",))
    assert match.source_labels == {"app": "productpage"}
    assert first.route == (
        RouteDestination(
            Destination("reviews", "v2", 9080),
            80,
            Headers(request=HeaderOperations(set=FrozenMap({"x-a": "b"}))),
        ),
        RouteDestination(Destination("reviews", "v3"), 20),
    )
    assert first.timeout == timedelta(seconds=1.5)
    assert first.retries == Retries(3, timedelta(seconds=2), "5xx,reset", True)
    assert first.fault == Fault(
        FaultDelay(timedelta(seconds=7), 0.1), FaultAbort(http_status=500, percentage=100.0)
    )
    assert first.mirror == Destination("shadow")
    assert first.mirror_percentage == 50.0
    assert first.headers == Headers(
        request=HeaderOperations(add=FrozenMap({"x-req": "1"}), remove=("x-drop",)),
        response=HeaderOperations(set=FrozenMap({"x-resp": "2"})),
    )
    assert first.rewrite == Rewrite(uri="/v1", authority="reviews.internal")
    assert redirect.redirect == Redirect("/new", "other", 8443, "https", 308)
    assert regex.rewrite == Rewrite(uri_regex_rewrite=RegexRewrite("^/old(.*)", "/new\\1"))
    assert regex.fault == Fault(abort=FaultAbort(grpc_status="UNAVAILABLE"))
    assert regex.route == (RouteDestination(Destination("reviews")),)


def test_destination_rule() -> None:
    rule = parse_object(
        load("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews.bookinfo.svc.cluster.local
          trafficPolicy:
            loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s, path: /}}}
            tls: {mode: ISTIO_MUTUAL}
          subsets:
          - {name: v1, labels: {version: v1}}
          - name: v2
            labels: {version: v2}
            trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
          exportTo: ["*"]
    """)
    )
    assert isinstance(rule, DestinationRule)
    assert rule.host == "reviews.bookinfo.svc.cluster.local"
    assert rule.traffic_policy == TrafficPolicy(
        consistent_hash=ConsistentHash(
            http_cookie_name="user", http_cookie_path="/", http_cookie_ttl=timedelta(0)
        )
    )
    v1 = rule.subset("v1")
    v2 = rule.subset("v2")
    assert v1 is not None and v1.labels == {"version": "v1"} and v1.traffic_policy is None
    assert v2 is not None and v2.traffic_policy == TrafficPolicy(load_balancer_simple="ROUND_ROBIN")
    assert rule.subset("v9") is None


def _istio(kind: str, spec: str, group: str = "networking.istio.io") -> str:
    return (
        f"{{apiVersion: {group}/v1, kind: {kind}, metadata: {{name: x, namespace: ns}},"
        f" spec: {spec}}}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _istio("AuthorizationPolicy", "{action: MAYBE}", "security.istio.io"),
            "AuthorizationPolicy ns/x: spec.action: expected one of ALLOW, DENY, AUDIT, CUSTOM",
        ),
        (
            _istio(
                "AuthorizationPolicy",
                "{rules: [{from: [{source: {principals: a}}]}]}",
                "security.istio.io",
            ),
            "spec.rules[0].from[0].source.principals: expected a list",
        ),
        (
            _istio(
                "AuthorizationPolicy", "{rules: [{when: [{values: [a]}]}]}", "security.istio.io"
            ),
            "spec.rules[0].when[0].key: required field is missing",
        ),
        (
            _istio("AuthorizationPolicy", "{targetRefs: [{name: waypoint}]}", "security.istio.io"),
            "spec.targetRefs[0].kind: required field is missing",
        ),
        (
            _istio(
                "AuthorizationPolicy",
                "{rules: [{to: [{operation: {ports: [[1]]}}]}]}",
                "security.istio.io",
            ),
            "spec.rules[0].to[0].operation.ports[0]: expected a port as a string",
        ),
        (
            _istio("PeerAuthentication", "{mtls: {mode: strict}}", "security.istio.io"),
            'spec.mtls.mode: expected one of UNSET, DISABLE, PERMISSIVE, STRICT, got "strict"',
        ),
        (
            _istio(
                "PeerAuthentication", "{portLevelMtls: {http: {mode: STRICT}}}", "security.istio.io"
            ),
            'spec.portLevelMtls.http: expected a port number 1-65535 as the key, got "http"',
        ),
        (
            _istio("ServiceEntry", "{ports: [{number: 80}]}"),
            "ServiceEntry ns/x: spec.hosts: required field is missing or empty",
        ),
        (
            _istio("ServiceEntry", "{hosts: [a], addresses: [10.0.0.0/33]}"),
            'spec.addresses[0]: expected an IP address or CIDR, got "10.0.0.0/33"',
        ),
        (
            _istio("ServiceEntry", "{hosts: [a], resolution: MAGIC}"),
            "spec.resolution: expected one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS",
        ),
        (
            _istio("ServiceEntry", "{hosts: [a], ports: [{name: http}]}"),
            "spec.ports[0].number: required field is missing",
        ),
        (
            _istio("ServiceEntry", "{hosts: [a], endpoints: [{address: x, ports: {http: 0}}]}"),
            "spec.endpoints[0].ports.http: expected an integer 1-65535, got 0",
        ),
        (
            _istio("WorkloadEntry", "{weight: -2}"),
            "WorkloadEntry ns/x: spec.weight: expected an integer",
        ),
        (
            _istio("VirtualService", "{http: [{match: [{uri: {exact: /a, prefix: /b}}]}]}"),
            "spec.http[0].match[0].uri: expected exactly one of exact, prefix, regex",
        ),
        (
            _istio("VirtualService", "{http: [{route: [{destination: {subset: v1}}]}]}"),
            "spec.http[0].route[0].destination.host: required field is missing",
        ),
        (
            _istio("VirtualService", "{http: [{route: [{destination: {host: a}, weight: 101}]}]}"),
            "spec.http[0].route[0].weight: expected an integer 0-100, got 101",
        ),
        (
            _istio("VirtualService", "{http: [{timeout: forever}]}"),
            'spec.http[0].timeout: expected a duration such as "10s"',
        ),
        (
            _istio(
                "RequestAuthentication",
                "{jwtRules: [{issuer: a, jwksUri: 'file:///keys'}]}",
                group="security.istio.io",
            ),
            'spec.jwtRules[0].jwksUri: expected an http:// or https:// URI, got "file:///keys"',
        ),
        (
            _istio("RequestAuthentication", "{jwtRules: [{jwks: x}]}", group="security.istio.io"),
            "spec.jwtRules[0].issuer: required field is missing",
        ),
        (
            _istio("DestinationRule", "{host: h, trafficPolicy: {tls: {mode: MUTUAL}}}"),
            "spec.trafficPolicy.tls: MUTUAL needs credentialName, or clientCertificate and "
            "privateKey",
        ),
        (
            _istio(
                "DestinationRule",
                "{host: h, trafficPolicy: {tls: {mode: MUTUAL, credentialName: other/client}}}",
            ),
            "spec.trafficPolicy.tls.credentialName: a Secret of another namespace is never served",
        ),
        (
            _istio(
                "DestinationRule",
                "{host: h, trafficPolicy: {tls: {mode: SIMPLE, credentialName: 'configmap://n/c'}}}",
            ),
            "spec.trafficPolicy.tls.credentialName: only Secrets of the proxy's namespace",
        ),
        (
            _istio("VirtualService", "{http: [{corsPolicy: {unmatchedPreflights: DROP}}]}"),
            "spec.http[0].corsPolicy.unmatchedPreflights: expected one of UNSPECIFIED, FORWARD, "
            'IGNORE, got "DROP"',
        ),
        (
            _istio("VirtualService", "{http: [{corsPolicy: {allowOrigins: [{glob: x}]}}]}"),
            "spec.http[0].corsPolicy.allowOrigins[0]: expected exactly one of exact, prefix, regex",
        ),
        (
            _istio("VirtualService", "{http: [{fault: {delay: {exponentialDelay: 1s}}}]}"),
            "spec.http[0].fault.delay.fixedDelay: required field is missing",
        ),
        (
            _istio("VirtualService", "{http: [{fault: {abort: {percentage: {value: 5}}}}]}"),
            "spec.http[0].fault.abort: expected exactly one of httpStatus, grpcStatus",
        ),
        (
            _istio("VirtualService", "{http: [{mirrorPercentage: {value: 150}}]}"),
            "spec.http[0].mirrorPercentage.value: expected a number 0-100, got 150",
        ),
        (
            _istio("DestinationRule", "{subsets: [{name: v1}]}"),
            "DestinationRule ns/x: spec.host: required field is missing",
        ),
        (
            _istio("DestinationRule", "{host: a, subsets: [{labels: {version: v1}}]}"),
            "spec.subsets[0].name: required field is missing",
        ),
    ],
)
def test_invalid_istio_objects(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_object(load(text))
    assert message in str(raised.value)
