"""Which resources each connecting proxy gets, and which types it may ask for.

Every ztunnel shares the mesh-wide scope. A waypoint (or a sandwiched gateway,
which connects as a "router") gets the scope of the Gateway it runs for, named
by the ``gateway.networking.k8s.io/gateway-name`` label in its node metadata.
Secrets travel only on authenticated streams, and only to their owner.
"""

from __future__ import annotations

from xds import type_urls
from xds.model.gateway import Gateway
from xds.model.mesh import Mesh
from xds.plane.secrets import SecretPublisher
from xds.resources import ZTUNNEL_SCOPE, node_group, waypoint_scope
from xds.security.authn import Caller
from xds.security.authz import PermissionDeniedError, authorize_proxy
from xds.serving.ads import Binder, Binding
from xds.serving.node import InvalidNode, ProxyNode, ProxyType
from xds.serving.session import Forbidden, TypeFilter
from xds.translate.binding import waypoint_for_gateway

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"

_ZTUNNEL_TYPES = frozenset({type_urls.ADDRESS, type_urls.AUTHORIZATION})
_ENVOY_TYPES = frozenset(
    {type_urls.LISTENER, type_urls.CLUSTER, type_urls.ENDPOINT, type_urls.ROUTE, type_urls.SECRET}
)
DEBUG_TYPES = frozenset({type_urls.DEBUG_SYNCZ, type_urls.DEBUG_CONFIG_DUMP, type_urls.DEBUG})
# istioctl (proxy-status, x internal-debug) marks its streams with this generator.
_DEBUG_GENERATOR = "event"
DEBUG_SCOPE = "debug"


def is_debug_client(node: ProxyNode) -> bool:
    return node.metadata.get("GENERATOR") == _DEBUG_GENERATOR


def _debug_binding() -> Binding:
    return Binding(DEBUG_SCOPE, _only(DEBUG_TYPES, "debug", secrets=False))


_SECRETS_ON_TLS_ONLY = (
    "secrets are only served on the authenticated TLS port, to the "
    "identity they belong to; connect HBONE waypoints to the secure port"
)


def _only(allowed: frozenset[str], who: str, *, secrets: bool) -> TypeFilter:
    def check(type_url: str) -> str | None:
        if type_url == type_urls.SECRET and not secrets:
            return _SECRETS_ON_TLS_ONLY
        if type_url not in allowed:
            return f"{who} streams may not subscribe to {type_url}"
        return None

    return check


def gateway_of(node: ProxyNode) -> str:
    name = node.labels().get(GATEWAY_NAME_LABEL, "")
    if not name:
        raise InvalidNode(
            f"{node.type.value} node {node.id}: metadata LABELS must carry "
            f"{GATEWAY_NAME_LABEL} naming the Gateway it serves"
        )
    return name


def _ztunnel_binding(node: ProxyNode) -> Binding:
    """The mesh-wide scope; an on-demand ztunnel also gets its own node's workloads
    unasked (istiod: ``AdditionalPodSubscriptions``), found by its ``NODE_NAME``."""
    standing = (
        {type_urls.ADDRESS: frozenset({node_group(node.node_name)})} if node.node_name else {}
    )
    return Binding(
        ZTUNNEL_SCOPE, _only(_ZTUNNEL_TYPES, "ztunnel", secrets=False), standing_groups=standing
    )


def plaintext_binder() -> Binder:
    """The unauthenticated port: config for anyone (as istiod's 15010), never secrets."""

    async def bind(node: ProxyNode, caller: Caller | None) -> Binding:
        if is_debug_client(node):
            return _debug_binding()
        if node.type is ProxyType.ZTUNNEL:
            return _ztunnel_binding(node)
        if node.type in (ProxyType.WAYPOINT, ProxyType.ROUTER):
            scope = waypoint_scope(node.namespace, gateway_of(node))
            return Binding(
                scope,
                _only(_ENVOY_TYPES - {type_urls.SECRET}, "waypoint", secrets=False),
                withheld={type_urls.SECRET: _SECRETS_ON_TLS_ONLY},
            )
        raise Forbidden(
            f"{node.type.value} proxies are not served: this control plane "
            "serves ambient mode (ztunnel and waypoints) only"
        )

    return bind


def gateway_accounts(mesh: Mesh, namespace: str, name: str) -> set[str]:
    """Service accounts that may run Gateway ``namespace/name``.

    Istio's deployment controller runs a waypoint as service account ``<name>``
    (``<name>-istio`` for the ``istio`` class); pods labelled as instances of
    the Gateway add their own accounts."""
    accounts = {name, f"{name}-istio"}
    gateway = mesh.get(Gateway, namespace, name)
    if gateway is not None:
        waypoint = waypoint_for_gateway(mesh, gateway)
        if waypoint is not None:
            accounts.update(waypoint.service_accounts)
    return accounts


def secure_binder(mesh: Mesh, secrets: SecretPublisher, system_namespace: str) -> Binder:
    """The TLS port: every stream is authenticated; what it gets depends on who it is.

    - ztunnel streams are served to any identity that passes the identity
      check below, as istiod does: a dedicated-mode ztunnel runs as its
      workload's own account. (Being a trusted node account matters only for
      certificate impersonation, which the CA decides.)
    - a waypoint identity gets the config of a Gateway it may run, and its own
      secrets (``default``, ``ROOTCA``) from the scope of its identity;
    - any identity must match the namespace and service account its node
      metadata claims (istiod's xDS identity check);
    - debug types (istioctl) need an identity in the system namespace.
    Anonymous callers exist only with ``--insecure-dev-auth`` and never get secrets.
    """

    async def bind(node: ProxyNode, caller: Caller | None) -> Binding:
        identity = caller.identity if caller is not None else None
        if is_debug_client(node):
            if identity is not None and identity.namespace != system_namespace:
                raise Forbidden(
                    f"{identity} may not read debug types: they reveal the whole "
                    f"mesh and need an identity in {system_namespace}"
                )
            return _debug_binding()
        if caller is not None:
            service_account = node.metadata.get("SERVICE_ACCOUNT", "")
            try:
                authorize_proxy(
                    caller,
                    node.namespace,
                    service_account if isinstance(service_account, str) else "",
                )
            except PermissionDeniedError as e:
                raise Forbidden(str(e)) from None

        if node.type is ProxyType.ZTUNNEL:
            return _ztunnel_binding(node)

        if node.type in (ProxyType.WAYPOINT, ProxyType.ROUTER):
            gateway = gateway_of(node)
            scope = waypoint_scope(node.namespace, gateway)
            if identity is None:
                return Binding(scope, _only(_ENVOY_TYPES, "waypoint", secrets=False))
            allowed = gateway_accounts(mesh, node.namespace, gateway)
            if identity.namespace != node.namespace or identity.service_account not in allowed:
                raise Forbidden(
                    f"{identity} may not serve Gateway {node.namespace}/{gateway} "
                    f"(its accounts: {', '.join(sorted(allowed))})"
                )
            secret_scope = await secrets.acquire(identity)
            return Binding(
                scope,
                _only(_ENVOY_TYPES, "waypoint", secrets=True),
                type_scopes={type_urls.SECRET: secret_scope},
                release=lambda: secrets.release(identity),
            )

        raise Forbidden(
            f"{node.type.value} proxies are not served: this control plane "
            "serves ambient mode (ztunnel and waypoints) only"
        )

    return bind
