"""Parsers for ServiceEntry, WorkloadEntry, VirtualService and DestinationRule."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network

from xds.model.frozen import FrozenMap
from xds.model.meta import ObjectMeta
from xds.model.networking import (
    AllocatedAddress,
    ClientTls,
    ConnectionPool,
    ConsistentHash,
    CorsPolicy,
    Destination,
    DestinationRule,
    Fault,
    FaultAbort,
    FaultDelay,
    HeaderOperations,
    Headers,
    IPNetwork,
    Location,
    OutlierDetection,
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
    Subset,
    TrafficPolicy,
    UnmatchedPreflights,
    VirtualService,
    VirtualServiceMatch,
    VirtualServiceRoute,
    WorkloadEndpoint,
    WorkloadEntry,
)
from xds.model.parse.reader import Reader

_MAX_WEIGHT = 2**32 - 1


def _port_map(parent: Reader, key: str) -> FrozenMap[str, int]:
    return FrozenMap(
        (name, number.integer_value(1, 65535, "an integer 1-65535"))
        for name, number in parent.entries(key)
    )


def _workload_endpoint(spec: Reader) -> WorkloadEndpoint:
    return WorkloadEndpoint(
        address=spec.string("address"),
        ports=_port_map(spec, "ports"),
        labels=spec.string_map("labels"),
        network=spec.string("network"),
        locality=spec.string("locality"),
        weight=spec.integer("weight", 0, 0, _MAX_WEIGHT),
        service_account=spec.string("serviceAccount"),
    )


def parse_workload_entry(doc: Reader, meta: ObjectMeta) -> WorkloadEntry:
    endpoint = _workload_endpoint(doc.obj("spec"))
    return WorkloadEntry(
        meta=meta,
        address=endpoint.address,
        spec_labels=endpoint.labels,
        ports=endpoint.ports,
        network=endpoint.network,
        locality=endpoint.locality,
        weight=endpoint.weight,
        service_account=endpoint.service_account,
    )


def _networks(spec: Reader) -> tuple[IPNetwork, ...]:
    result = []
    for index, text in enumerate(spec.strings("addresses")):
        try:
            # strict=False masks host bits ("10.0.0.1/24" -> 10.0.0.0/24), as upstream does.
            result.append(ip_network(text, strict=False))
        except ValueError:
            spec.fail(f'expected an IP address or CIDR, got "{text}"', f"addresses[{index}]")
    return tuple(result)


def parse_service_entry(doc: Reader, meta: ObjectMeta) -> ServiceEntry:
    spec = doc.obj("spec")
    hosts = spec.strings("hosts")
    if not hosts:
        spec.fail("required field is missing or empty", "hosts")
    return ServiceEntry(
        meta=meta,
        hosts=hosts,
        addresses=_networks(spec),
        ports=tuple(
            ServiceEntryPort(
                number=port.port("number"),
                name=port.string("name"),
                protocol=port.string("protocol"),
                target_port=port.opt_port("targetPort") or 0,
            )
            for port in spec.items("ports")
        ),
        location=spec.enum("location", Location, Location.MESH_EXTERNAL),
        resolution=spec.enum("resolution", Resolution, Resolution.NONE),
        endpoints=tuple(_workload_endpoint(endpoint) for endpoint in spec.items("endpoints")),
        workload_selector=spec.obj("workloadSelector").opt_string_map("labels")
        if spec.has("workloadSelector")
        else None,
        subject_alt_names=spec.strings("subjectAltNames"),
        export_to=spec.strings("exportTo"),
        status_addresses=tuple(
            AllocatedAddress(host=entry.string("host"), value=entry.required_string("value"))
            for entry in doc.obj("status").items("addresses")
        ),
    )


# --- VirtualService -------------------------------------------------------------


def _string_match(match: Reader) -> StringMatch:
    present = [kind for kind in StringMatchType if match.has(kind.value)]
    if len(present) != 1:
        match.fail("expected exactly one of exact, prefix, regex")
    return StringMatch(present[0], match.string(present[0].value))


def _opt_string_match(parent: Reader, key: str) -> StringMatch | None:
    return _string_match(parent.obj(key)) if parent.has(key) else None


def _string_matches(parent: Reader, key: str) -> FrozenMap[str, StringMatch]:
    return FrozenMap((name, _string_match(match)) for name, match in parent.entries(key))


def _match(match: Reader) -> VirtualServiceMatch:
    return VirtualServiceMatch(
        name=match.string("name"),
        uri=_opt_string_match(match, "uri"),
        scheme=_opt_string_match(match, "scheme"),
        method=_opt_string_match(match, "method"),
        authority=_opt_string_match(match, "authority"),
        headers=_string_matches(match, "headers"),
        without_headers=_string_matches(match, "withoutHeaders"),
        query_params=_string_matches(match, "queryParams"),
        port=match.opt_port("port"),
        source_labels=match.string_map("sourceLabels"),
        gateways=match.strings("gateways"),
        ignore_uri_case=match.boolean("ignoreUriCase"),
    )


def _destination(destination: Reader) -> Destination:
    return Destination(
        host=destination.required_string("host"),
        subset=destination.opt_string("subset"),
        port=destination.obj("port").opt_port("number"),
    )


def _header_operations(operations: Reader) -> HeaderOperations:
    return HeaderOperations(
        set=operations.string_map("set"),
        add=operations.string_map("add"),
        remove=operations.strings("remove"),
    )


def _headers(parent: Reader) -> Headers | None:
    if not parent.has("headers"):
        return None
    headers = parent.obj("headers")
    return Headers(
        request=_header_operations(headers.obj("request")),
        response=_header_operations(headers.obj("response")),
    )


def _percentage(parent: Reader, key: str) -> float | None:
    return parent.obj(key).opt_number("value", 0.0, 100.0)


def _fault(fault: Reader) -> Fault:
    delay = None
    if fault.has("delay"):
        body = fault.obj("delay")
        fixed = body.opt_duration("fixedDelay")
        if fixed is None:
            body.fail("required field is missing (exponentialDelay is not supported)", "fixedDelay")
        delay = FaultDelay(fixed_delay=fixed, percentage=_percentage(body, "percentage"))
    abort = None
    if fault.has("abort"):
        body = fault.obj("abort")
        http_status = body.opt_integer("httpStatus", 200, 599, "an HTTP status code 200-599")
        grpc_status = body.opt_string("grpcStatus")
        if (http_status is None) == (grpc_status is None):
            body.fail("expected exactly one of httpStatus, grpcStatus")
        abort = FaultAbort(http_status, grpc_status, _percentage(body, "percentage"))
    return Fault(delay=delay, abort=abort)


def _cors(cors: Reader) -> CorsPolicy:
    origins = tuple(_string_match(match) for match in cors.items("allowOrigins"))
    if not origins:
        origins = tuple(StringMatch(StringMatchType.EXACT, o) for o in cors.strings("allowOrigin"))
    return CorsPolicy(
        allow_origins=origins,
        allow_methods=cors.strings("allowMethods"),
        allow_headers=cors.strings("allowHeaders"),
        expose_headers=cors.strings("exposeHeaders"),
        max_age=cors.opt_duration("maxAge"),
        allow_credentials=cors.opt_boolean("allowCredentials"),
        unmatched_preflights=cors.enum(
            "unmatchedPreflights", UnmatchedPreflights, UnmatchedPreflights.UNSPECIFIED
        ),
    )


def _http_route(route: Reader) -> VirtualServiceRoute:
    redirect = route.obj("redirect")
    rewrite = route.obj("rewrite")
    retries = route.obj("retries")
    regex = rewrite.obj("uriRegexRewrite")
    return VirtualServiceRoute(
        name=route.string("name"),
        match=tuple(_match(match) for match in route.items("match")),
        route=tuple(
            RouteDestination(
                destination=_destination(entry.obj("destination")),
                weight=entry.integer("weight", 0, 0, 100, "an integer 0-100"),
                headers=_headers(entry),
            )
            for entry in route.items("route")
        ),
        redirect=Redirect(
            uri=redirect.opt_string("uri"),
            authority=redirect.opt_string("authority"),
            port=redirect.opt_port("port"),
            scheme=redirect.opt_string("scheme"),
            redirect_code=redirect.integer("redirectCode", 301, 300, 399, "an integer 300-399"),
        )
        if route.has("redirect")
        else None,
        rewrite=Rewrite(
            uri=rewrite.opt_string("uri"),
            authority=rewrite.opt_string("authority"),
            uri_regex_rewrite=RegexRewrite(regex.required_string("match"), regex.string("rewrite"))
            if rewrite.has("uriRegexRewrite")
            else None,
        )
        if route.has("rewrite")
        else None,
        timeout=route.opt_duration("timeout"),
        retries=Retries(
            attempts=retries.integer("attempts", 0, 0),
            per_try_timeout=retries.opt_duration("perTryTimeout"),
            retry_on=retries.opt_string("retryOn"),
            retry_remote_localities=retries.opt_boolean("retryRemoteLocalities"),
        )
        if route.has("retries")
        else None,
        fault=_fault(route.obj("fault")) if route.has("fault") else None,
        mirror=_destination(route.obj("mirror")) if route.has("mirror") else None,
        mirror_percentage=_percentage(route, "mirrorPercentage"),
        headers=_headers(route),
        cors=_cors(route.obj("corsPolicy")) if route.has("corsPolicy") else None,
    )


def parse_virtual_service(doc: Reader, meta: ObjectMeta) -> VirtualService:
    spec = doc.obj("spec")
    return VirtualService(
        meta=meta,
        hosts=spec.strings("hosts"),
        gateways=spec.strings("gateways"),
        http=tuple(_http_route(route) for route in spec.items("http")),
    )


# --- DestinationRule --------------------------------------------------------------


def _connection_pool(pool: Reader) -> ConnectionPool:
    tcp, http = pool.obj("tcp"), pool.obj("http")
    return ConnectionPool(
        max_connections=tcp.integer("maxConnections", 0, 0),
        connect_timeout=tcp.opt_duration("connectTimeout"),
        max_connection_duration=tcp.opt_duration("maxConnectionDuration"),
        tcp_idle_timeout=tcp.opt_duration("idleTimeout"),
        http1_max_pending_requests=http.integer("http1MaxPendingRequests", 0, 0),
        http2_max_requests=http.integer("http2MaxRequests", 0, 0),
        max_requests_per_connection=http.integer("maxRequestsPerConnection", 0, 0),
        max_retries=http.integer("maxRetries", 0, 0),
        http_idle_timeout=http.opt_duration("idleTimeout"),
        max_concurrent_streams=http.integer("maxConcurrentStreams", 0, 0),
    )


def _outlier_detection(outlier: Reader) -> OutlierDetection:
    return OutlierDetection(
        consecutive_5xx_errors=outlier.opt_integer("consecutive5xxErrors", 0),
        consecutive_gateway_errors=outlier.opt_integer("consecutiveGatewayErrors", 0),
        interval=outlier.opt_duration("interval"),
        base_ejection_time=outlier.opt_duration("baseEjectionTime"),
        max_ejection_percent=outlier.integer("maxEjectionPercent", 0, 0, 100, "an integer 0-100"),
        min_health_percent=outlier.integer("minHealthPercent", 0, 0, 100, "an integer 0-100"),
        split_external_local_origin_errors=outlier.boolean("splitExternalLocalOriginErrors"),
        consecutive_local_origin_failures=outlier.opt_integer("consecutiveLocalOriginFailures", 0),
    )


def _traffic_policy(parent: Reader) -> TrafficPolicy | None:
    if not parent.has("trafficPolicy"):
        return None
    policy = _policy(parent.obj("trafficPolicy"))
    port_level = []
    for entry in parent.obj("trafficPolicy").items("portLevelSettings"):
        number = entry.obj("port").opt_port("number")
        if number is None:
            entry.fail("required field is missing", "port.number")
        port_level.append((number, _policy(entry)))
    return replace(policy, port_level=tuple(port_level))


def _client_tls(tls: Reader) -> ClientTls:
    mutual = tls.string("mode") == "MUTUAL"
    client_certificate = tls.opt_string("clientCertificate")
    private_key = tls.opt_string("privateKey")
    credential_name = tls.opt_string("credentialName") or None
    if credential_name is not None:
        if credential_name.startswith(("configmap://", "sds://", "kubernetes-gateway://")):
            tls.fail(
                "only Secrets of the proxy's namespace (a name, kubernetes://name) "
                "and builtin:// are supported",
                "credentialName",
            )
        if "/" in credential_name.removeprefix("kubernetes://").removeprefix("builtin://"):
            tls.fail(
                "a Secret of another namespace is never served to a proxy (istiod's rule); "
                "name a Secret of the waypoint's own namespace",
                "credentialName",
            )
    elif mutual and (client_certificate is None or private_key is None):
        tls.fail("MUTUAL needs credentialName, or clientCertificate and privateKey")
    return ClientTls(
        mutual=mutual,
        sni=tls.opt_string("sni"),
        ca_certificates=tls.opt_string("caCertificates"),
        client_certificate=client_certificate,
        private_key=private_key,
        credential_name=credential_name,
        subject_alt_names=tls.strings("subjectAltNames"),
        insecure_skip_verify=tls.boolean("insecureSkipVerify"),
    )


def _policy(policy: Reader) -> TrafficPolicy:
    """The components shared by a trafficPolicy and its portLevelSettings entries."""
    tls = policy.obj("tls")
    if tls.peek("mode") in ("ISTIO_MUTUAL", "DISABLE"):
        # What a waypoint does anyway (HBONE to mesh backends, plaintext to others).
        tls.skip("mode")
    balancer = policy.obj("loadBalancer")
    consistent = balancer.obj("consistentHash")
    cookie = consistent.obj("httpCookie")
    return TrafficPolicy(
        load_balancer_simple=balancer.opt_string("simple"),
        consistent_hash=ConsistentHash(
            http_header_name=consistent.opt_string("httpHeaderName"),
            http_cookie_name=cookie.required_string("name")
            if consistent.has("httpCookie")
            else None,
            http_cookie_path=cookie.opt_string("path"),
            http_cookie_ttl=cookie.opt_duration("ttl"),
            use_source_ip=consistent.boolean("useSourceIp"),
            http_query_parameter_name=consistent.opt_string("httpQueryParameterName"),
        )
        if balancer.has("consistentHash")
        else None,
        tls=_client_tls(tls) if tls.peek("mode") in ("SIMPLE", "MUTUAL") else None,
        connection_pool=_connection_pool(policy.obj("connectionPool"))
        if policy.has("connectionPool")
        else None,
        outlier_detection=_outlier_detection(policy.obj("outlierDetection"))
        if policy.has("outlierDetection")
        else None,
    )


def parse_destination_rule(doc: Reader, meta: ObjectMeta) -> DestinationRule:
    spec = doc.obj("spec")
    return DestinationRule(
        meta=meta,
        host=spec.required_string("host"),
        subsets=tuple(
            Subset(
                name=subset.required_string("name"),
                labels=subset.string_map("labels"),
                traffic_policy=_traffic_policy(subset),
            )
            for subset in spec.items("subsets")
        ),
        traffic_policy=_traffic_policy(spec),
    )
