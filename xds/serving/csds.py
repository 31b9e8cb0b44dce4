"""``envoy.service.status.v3.ClientStatusDiscoveryService``: every proxy's sync state over gRPC.

istiod has no CSDS service (it sends the same ``ClientConfig`` inside ADS as
``istio.io/debug/syncz``); we offer both, so that stock tools (``grpcurl``,
CSDS dashboards) can ask without speaking ADS. A request's ``node_matchers``
select proxies by node id (OR semantics, as the API defines them); the
response holds one ``ClientConfig`` per matching proxy (see
``introspection.client_config``).

Who may ask is decided per port by an ``Authorize`` callable: on the TLS port
a caller with an identity in the system namespace, on the plaintext port a
loopback caller (the rule the HTTP debug endpoints follow).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import grpc
from envoy.service.status.v3 import csds_pb2
from envoy.type.matcher.v3 import node_pb2, string_pb2

from xds.serving.ads import Authenticate, Connection, ConnectionRegistry, Unauthenticated
from xds.serving.introspection import client_config, full_node_id, is_loopback_peer, proxies

log = logging.getLogger("xds.csds")

SERVICE = "envoy.service.status.v3.ClientStatusDiscoveryService"


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str


Authorize = Callable[[grpc.aio.ServicerContext], Awaitable[Refusal | None]]
"""Returns why a call is refused, or None to serve it."""


async def loopback_callers(context: grpc.aio.ServicerContext) -> Refusal | None:
    """The plaintext port has no credentials: only callers on this host may look."""
    if is_loopback_peer(context.peer()):
        return None
    return Refusal(
        grpc.StatusCode.PERMISSION_DENIED,
        "client status is served on the plaintext port to loopback callers only; "
        "use the TLS port with a token of the system namespace",
    )


def system_namespace_callers(authenticate: Authenticate, system_namespace: str) -> Authorize:
    """The TLS port: the caller's token must name an identity in ``system_namespace``
    (like istioctl's, which uses ``<system namespace>/default``)."""

    async def authorize(context: grpc.aio.ServicerContext) -> Refusal | None:
        try:
            caller = await authenticate(context)
        except Unauthenticated as e:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED, str(e))
        identity = caller.identity if caller is not None else None
        if identity is None or identity.namespace != system_namespace:
            who = identity.uri if identity is not None else "an anonymous caller"
            return Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{who} may not read client status: it reveals every proxy's "
                f"config and needs an identity in {system_namespace}",
            )
        return None

    return authorize


class InvalidMatcher(ValueError):
    """A node matcher we do not evaluate; the call ends with INVALID_ARGUMENT."""


def check_matchers(matchers: Iterable[node_pb2.NodeMatcher]) -> None:
    """Raise ``InvalidMatcher`` for what we do not evaluate, whether or not a proxy is
    connected: the same request must not succeed or fail depending on who is online."""
    for matcher in matchers:
        if matcher.node_metadatas:
            raise InvalidMatcher("node_metadatas is not supported: match on node_id")
        pattern = matcher.node_id.WhichOneof("match_pattern")
        if pattern in ("safe_regex", "custom"):
            # Regexes from callers are not compiled on the request path
            # (istiod's regex advisories); the other forms cover node ids.
            raise InvalidMatcher(
                f"node_id.{pattern} is not supported: use exact, prefix, suffix or contains"
            )


def _string_matches(matcher: string_pb2.StringMatcher, value: str) -> bool:
    pattern = matcher.WhichOneof("match_pattern")
    if pattern is None:
        return True
    expected: str = getattr(matcher, pattern)
    if matcher.ignore_case:
        expected, value = expected.lower(), value.lower()
    if pattern == "exact":
        return value == expected
    if pattern == "prefix":
        return value.startswith(expected)
    if pattern == "suffix":
        return value.endswith(expected)
    return expected in value


def selected(connection: Connection, matchers: Sequence[node_pb2.NodeMatcher]) -> bool:
    """Whether any matcher selects this proxy, by its full node id or its ``pod.ns`` id."""
    if not matchers:
        return True
    ids = (full_node_id(connection.node), connection.node.id)
    return any(any(_string_matches(m.node_id, node_id) for node_id in ids) for m in matchers)


def client_status(
    connections: ConnectionRegistry, request: csds_pb2.ClientStatusRequest
) -> csds_pb2.ClientStatusResponse:
    """The answer to one ``ClientStatusRequest``; raises ``InvalidMatcher``."""
    check_matchers(request.node_matchers)
    response = csds_pb2.ClientStatusResponse()
    for connection in proxies(connections):
        if selected(connection, request.node_matchers):
            response.config.append(
                client_config(
                    connection,
                    node_id=full_node_id(connection.node),
                    resources=True,
                    contents=not request.exclude_resource_contents,
                )
            )
    return response


class CsdsService:
    def __init__(self, connections: ConnectionRegistry, *, authorize: Authorize) -> None:
        self._connections = connections
        self._authorize = authorize

    def handler(self) -> grpc.GenericRpcHandler:
        serialize: Callable[[csds_pb2.ClientStatusResponse], bytes] = (
            csds_pb2.ClientStatusResponse.SerializeToString
        )
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "FetchClientStatus": grpc.unary_unary_rpc_method_handler(
                    self._fetch,
                    request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                    response_serializer=serialize,
                ),
                "StreamClientStatus": grpc.stream_stream_rpc_method_handler(
                    self._stream,
                    request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                    response_serializer=serialize,
                ),
            },
        )

    async def _admit(self, context: grpc.aio.ServicerContext) -> None:
        refusal = await self._authorize(context)
        if refusal is not None:
            log.warning(
                "client status refused", extra={"peer": context.peer(), "reason": refusal.message}
            )
            await context.abort(refusal.code, refusal.message)

    async def _answer(
        self, request: csds_pb2.ClientStatusRequest, context: grpc.aio.ServicerContext
    ) -> csds_pb2.ClientStatusResponse:
        try:
            return client_status(self._connections, request)
        except InvalidMatcher as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # abort raises; this keeps type checkers informed

    async def _fetch(
        self, request: csds_pb2.ClientStatusRequest, context: grpc.aio.ServicerContext
    ) -> csds_pb2.ClientStatusResponse:
        await self._admit(context)
        return await self._answer(request, context)

    async def _stream(
        self,
        requests: AsyncIterator[csds_pb2.ClientStatusRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[csds_pb2.ClientStatusResponse]:
        await self._admit(context)
        async for request in requests:
            yield await self._answer(request, context)
