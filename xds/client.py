"""A small asyncio ADS client: behaves like ztunnel (Delta) or Envoy (SotW/Delta).

Used by the test suite, the load generator and for poking at a running server.
It keeps the state a real proxy keeps: the resources it holds with their
versions, so that reconnecting sends ``initial_resource_versions`` exactly as
ztunnel does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from xds.tasks import cancel_and_wait

_ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
_Decoded = TypeVar("_Decoded", bound=Message, covariant=True)


class Decoder(Protocol[_Decoded]):
    """What turns response bytes into a message: the message class itself, or a wrapper
    (the load test's counts the bytes)."""

    def FromString(self, data: bytes, /) -> _Decoded: ...


Nack = Callable[[str, ResponseT], str | None]
"""Given (type_url, response) returns a NACK message, or None to ACK."""


def make_node(node_id: str, metadata: Mapping[str, Any] | None = None) -> base_pb2.Node:
    """An Envoy ``Node``; ``metadata`` (JSON, as a proxy sends it) becomes its Struct."""
    node = base_pb2.Node(id=node_id)
    if metadata:
        struct = struct_pb2.Struct()
        struct.update(metadata)
        node.metadata.CopyFrom(struct)
    return node


@dataclass
class _Stream(Generic[RequestT, ResponseT]):
    """Plumbing shared by both variants: the request queue and the response inbox."""

    channel: grpc.aio.Channel
    node_id: str
    metadata: dict[str, Any] = field(default_factory=dict)  # the node's (see make_node)
    metadata_headers: Sequence[tuple[str, str]] = ()
    nack: Nack[ResponseT] | None = None
    # Responses, then what ended the stream (grpc's error, or EOFError).
    responses: asyncio.Queue[ResponseT | Exception] = field(default_factory=asyncio.Queue)
    _requests: asyncio.Queue[RequestT | None] = field(default_factory=asyncio.Queue)
    _call: grpc.aio.StreamStreamCall | None = None
    _reader: asyncio.Task[None] | None = None

    def _open(
        self, method: str, request_type: type[RequestT], response_type: Decoder[ResponseT]
    ) -> grpc.aio.StreamStreamCall:
        self._requests = asyncio.Queue()
        self.responses = asyncio.Queue()
        rpc = self.channel.stream_stream(
            _ADS + method,
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        self._call = rpc(self._request_stream(), metadata=tuple(self.metadata_headers))
        return self._call

    async def _request_stream(self) -> AsyncIterator[RequestT]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            async for response in call:
                self._requests.put_nowait(self._answer(response))
                self.responses.put_nowait(response)
        except grpc.aio.AioRpcError as e:
            self.responses.put_nowait(e)
        else:
            self.responses.put_nowait(EOFError("stream ended"))

    def _answer(self, response: ResponseT) -> RequestT:
        raise NotImplementedError

    async def next(self, within: float = 5.0) -> ResponseT:
        """The next response (already ACKed or NACKed); raises what ended the stream."""
        item = await asyncio.wait_for(self.responses.get(), within)
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self._requests.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            await cancel_and_wait(self._reader)


@dataclass
class Held:
    version: str
    body: bytes


@dataclass
class DeltaClient(
    _Stream[discovery_pb2.DeltaDiscoveryRequest, discovery_pb2.DeltaDiscoveryResponse]
):
    """One Delta ADS stream. ``held[type_url][name]`` is what the proxy has applied."""

    held: dict[str, dict[str, Held]] = field(default_factory=dict)

    async def connect(
        self, subscriptions: dict[str, Sequence[str]], *, on_demand: Sequence[str] = ()
    ) -> None:
        """Open the stream and send one initial request per type, as ztunnel does.

        ``subscriptions`` maps a type URL to the names to subscribe (empty: wildcard).
        Types in ``on_demand`` subscribe to nothing (``*`` in and out). Names held
        from an earlier stream go out as ``initial_resource_versions``."""
        call = self._open(
            "DeltaAggregatedResources",
            discovery_pb2.DeltaDiscoveryRequest,
            discovery_pb2.DeltaDiscoveryResponse,
        )
        for type_url, names in subscriptions.items():
            request = discovery_pb2.DeltaDiscoveryRequest(
                node=make_node(self.node_id, self.metadata), type_url=type_url
            )
            if type_url in on_demand:
                request.resource_names_subscribe.append("*")
                request.resource_names_unsubscribe.append("*")
            else:
                request.resource_names_subscribe.extend(names)
            for name, held in self.held.get(type_url, {}).items():
                request.initial_resource_versions[name] = held.version
            self._requests.put_nowait(request)
        self._reader = asyncio.ensure_future(self._read(call))

    def _answer(
        self, response: discovery_pb2.DeltaDiscoveryResponse
    ) -> discovery_pb2.DeltaDiscoveryRequest:
        # Like ztunnel: apply what is valid even when NACKing the response.
        error = self.nack(response.type_url, response) if self.nack else None
        self._hold(response, resources=error is None)
        ack = discovery_pb2.DeltaDiscoveryRequest(
            type_url=response.type_url, response_nonce=response.nonce
        )
        if error is not None:
            ack.error_detail.code = 3
            ack.error_detail.message = error
        return ack

    def _hold(
        self, response: discovery_pb2.DeltaDiscoveryResponse, *, resources: bool = True
    ) -> None:
        """Apply a response to ``held``: its resources (unless NACKed) and its removals."""
        held = self.held.setdefault(response.type_url, {})
        if resources:
            for resource in response.resources:
                held[resource.name] = Held(resource.version, resource.resource.value)
        for name in response.removed_resources:
            held.pop(name, None)

    def subscribe(
        self, type_url: str, names: Sequence[str] = (), unsubscribe: Sequence[str] = ()
    ) -> None:
        self._requests.put_nowait(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url,
                resource_names_subscribe=list(names),
                resource_names_unsubscribe=list(unsubscribe),
            )
        )


@dataclass
class SotwClient(_Stream[discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse]):
    """One state-of-the-world ADS stream that ACKs (or NACKs) like Envoy."""

    names: dict[str, list[str]] = field(default_factory=dict)
    last: dict[str, discovery_pb2.DiscoveryResponse] = field(default_factory=dict)
    _sent_node: bool = False

    async def connect(self, subscriptions: dict[str, Sequence[str]]) -> None:
        call = self._open(
            "StreamAggregatedResources",
            discovery_pb2.DiscoveryRequest,
            discovery_pb2.DiscoveryResponse,
        )
        self._sent_node = False
        for type_url, names in subscriptions.items():
            self.subscribe(type_url, names)
        self._reader = asyncio.ensure_future(self._read(call))

    def subscribe(self, type_url: str, names: Sequence[str]) -> None:
        """A new subscription (or a changed name list) for a type."""
        self.names[type_url] = list(names)
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names))
        last = self.last.get(type_url)
        if last is not None:
            request.version_info = last.version_info
            request.response_nonce = last.nonce
        if not self._sent_node:
            request.node.CopyFrom(make_node(self.node_id, self.metadata))
            self._sent_node = True
        self._requests.put_nowait(request)

    def _answer(self, response: discovery_pb2.DiscoveryResponse) -> discovery_pb2.DiscoveryRequest:
        error = self.nack(response.type_url, response) if self.nack else None
        request = discovery_pb2.DiscoveryRequest(
            type_url=response.type_url,
            response_nonce=response.nonce,
            resource_names=self.names.get(response.type_url, []),
        )
        if error is None:
            self.last[response.type_url] = response
            request.version_info = response.version_info
        else:
            previous = self.last.get(response.type_url)
            request.version_info = previous.version_info if previous else ""
            request.error_detail.code = 3
            request.error_detail.message = error
        return request
