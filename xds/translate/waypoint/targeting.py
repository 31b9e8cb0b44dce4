"""Which waypoint a policy with ``targetRefs`` applies to (AuthorizationPolicy,
RequestAuthentication, Telemetry): its Gateway (every chain), its GatewayClass from the root
namespace (every chain), or a bound Service or ServiceEntry in the policy's own
namespace (only that service's chains)."""

from __future__ import annotations

from collections.abc import Iterable

from xds.model.gateway import GATEWAY_GROUP
from xds.model.networking import NETWORKING_GROUP
from xds.model.security import AuthorizationPolicy, PolicyTargetRef, RequestAuthentication
from xds.model.telemetry import Telemetry
from xds.translate.waypoint.inputs import ServiceInfo, WaypointIdentity

Targeting = AuthorizationPolicy | RequestAuthentication | Telemetry


def targets_waypoint(policy: Targeting, identity: WaypointIdentity) -> bool:
    for ref in _own_namespace_refs(policy):
        if ref.group != GATEWAY_GROUP:
            continue
        if (
            ref.kind == "Gateway"
            and ref.name == identity.name
            and policy.namespace == identity.namespace
        ):
            return True
        if (
            ref.kind == "GatewayClass"
            and ref.name == identity.gateway_class
            and policy.namespace == identity.root_namespace
        ):
            return True
    return False


def targets_service(policy: Targeting, service: ServiceInfo) -> bool:
    if policy.namespace != service.namespace:
        return False
    for ref in _own_namespace_refs(policy):
        if ref.name != service.name:
            continue
        if service.kind == "Service" and ref.group == "" and ref.kind == "Service":
            return True
        if (
            service.kind == "ServiceEntry"
            and ref.group == NETWORKING_GROUP
            and ref.kind == "ServiceEntry"
        ):
            return True
    return False


def _own_namespace_refs(policy: Targeting) -> Iterable[PolicyTargetRef]:
    # A targetRef may only name objects in the policy's own namespace.
    return (
        ref
        for ref in policy.target_refs
        if ref.namespace is None or ref.namespace == policy.namespace
    )
