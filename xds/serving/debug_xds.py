"""The ``istio.io/debug*`` ADS types that istioctl asks for, answered per request.

- ``istio.io/debug/syncz``: one ``envoy.service.status.v3.ClientConfig`` per
  connected proxy (``istioctl proxy-status``), named ``<pod>.<namespace>``;
- ``istio.io/debug/config_dump``: resource name = a proxy id; the answer is
  unnamed resources: a ztunnel's addresses and policies, or an Envoy
  ``ConfigDump``'s sections for a waypoint (istiod's StatusGen);
- ``istio.io/debug``: resource name = an HTTP debug path such as
  ``config_dump?proxyID=x.ns``, replayed against the HTTP debug views; the
  body comes back raw in an ``Any`` of type ``istio.io/debug``, preceded by
  ``{"statusCode":"<code>"}`` when not 200 (istiod's DebugGen).

Debug data needs a caller we know: an authenticated identity (the TLS port,
where the binder already admits only the system namespace) or a loopback
peer. Identities outside the system namespace see only their own namespace
(istiod's ``callerNamespaceFilter``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

from xds.resources import Resource
from xds.security.identity import Identity, InvalidIdentity
from xds.serving.ads import Connection, ConnectionRegistry, DebugView
from xds.serving.debug import EVERYTHING, DebugCaller, DebugEndpoints
from xds.serving.introspection import (
    CLIENT_CONFIG_TYPE,
    client_config,
    envoy_config_dump,
    is_loopback_peer,
    proxies,
    served_resources,
)
from xds.serving.node import ProxyType
from xds.serving.session import Forbidden, ProtocolError
from xds.type_urls import DEBUG, DEBUG_CONFIG_DUMP, DEBUG_SYNCZ


class IstioDebugTypes:
    def __init__(
        self, connections: ConnectionRegistry, http: DebugEndpoints, system_namespace: str
    ) -> None:
        self._connections = connections
        self._http = http
        self._system_namespace = system_namespace

    def views(self) -> dict[str, DebugView]:
        """For ``AdsService(debug=...)``."""
        return {DEBUG_SYNCZ: self.syncz, DEBUG_CONFIG_DUMP: self.config_dump, DEBUG: self.debug}

    def caller(self, connection: Connection) -> DebugCaller:
        """What the requesting stream may see; ``Forbidden`` if it may see nothing."""
        # ``identity`` is the caller as displayed: "<spiffe uri> (via <authenticator>)", or
        # "anonymous (via insecure-dev)". Without a SPIFFE identity only the loopback rule
        # can admit a caller; nothing unparsable is trusted.
        identity: Identity | None = None
        if connection.identity is not None:
            with contextlib.suppress(InvalidIdentity):
                identity = Identity.parse(connection.identity.split(" ", 1)[0])
        if identity is None:
            if is_loopback_peer(connection.peer):
                return EVERYTHING
            raise Forbidden(
                "debug types need an authenticated SPIFFE identity (the TLS port "
                "with a token) or a loopback caller"
            )
        if identity.namespace == self._system_namespace:
            return EVERYTHING
        return DebugCaller(identity.namespace)

    def syncz(self, connection: Connection, names: Sequence[str]) -> list[Resource]:
        caller = self.caller(connection)
        return [
            Resource.from_message(CLIENT_CONFIG_TYPE, proxy.node.id, client_config(proxy))
            for proxy in proxies(self._connections)
            if caller.may_see(proxy)
        ]

    def config_dump(self, connection: Connection, names: Sequence[str]) -> list[Resource]:
        caller = self.caller(connection)
        if len(names) != 1:
            raise ProtocolError(
                f"{DEBUG_CONFIG_DUMP} takes exactly one resource name: "
                "the proxy id <pod>.<namespace>"
            )
        for proxy in proxies(self._connections):
            if proxy.node.id == names[0] and caller.may_see(proxy):
                return _dump(proxy)
        # istiod answers empty, so that istioctl tries the next instance.
        return []

    def debug(self, connection: Connection, names: Sequence[str]) -> list[Resource]:
        caller = self.caller(connection)
        if len(names) != 1:
            raise ProtocolError(
                f"{DEBUG} takes exactly one resource name: a debug path "
                "such as config_dump?proxyID=<pod>.<namespace>"
            )
        response = self._http.replay(names[0], caller)
        body = response.body
        if response.status != 200:
            body = json.dumps({"statusCode": str(response.status)}).encode() + body
        return [Resource(DEBUG, names[0], body)]


def _dump(proxy: Connection) -> list[Resource]:
    if proxy.node.type is ProxyType.ZTUNNEL:
        return list(served_resources(proxy))
    dump = envoy_config_dump(proxy)
    return [Resource(config.type_url, "", config.value) for config in dump.configs]
