"""Status of waypoint Gateways and of the ``istio-waypoint`` GatewayClass: pure functions.

Conditions, reasons and messages are istiod's (``reportGatewayStatus`` and
``SetProgrammedCondition`` in ``pilot/pkg/config/kube/gateway``), so
``kubectl get gateway`` and ``istioctl waypoint status`` read the same thing:

- ``status.addresses``: the Service's cluster IP and its DNS name, once the
  Service has a cluster IP; an address once reported is never removed;
- ``Accepted``: the Gateway is valid (at least one listener is, and its
  parametersRef, if any, names a usable ConfigMap: else ``InvalidParameters``);
- ``Programmed``: the Service exists (``Resource programmed, assigned to
  service(s) <host>:15008``), else ``AddressNotUsable``;
- per listener: a waypoint accepts exactly one listener, port 15008 protocol
  ``HBONE``; ``attachedRoutes`` counts the routes bound to it.

``lastTransitionTime`` moves only when a condition's status changes, as the
API conventions ask; ``observedGeneration`` is the Gateway's generation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Final

from xds.sources.kubernetes.waypoints.objects import CONTROLLER_NAME, deployment_name
from xds.translate.binding import HBONE_PORT

SUPPORTED_KINDS: Final = [
    {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"},
    {"group": "gateway.networking.k8s.io", "kind": "GRPCRoute"},
]


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


def conditions(
    existing: Sequence[Mapping[str, Any]],
    wanted: Sequence[Condition],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """``wanted`` as API conditions, keeping each one's ``lastTransitionTime`` while its
    status is unchanged; conditions of other types are dropped (they are all ours)."""
    previous = {str(c.get("type")): c for c in existing}
    result = []
    for condition in wanted:
        status = "True" if condition.status else "False"
        before = previous.get(condition.type) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result.append(entry)
    return result


def listener_valid(listener: Mapping[str, Any]) -> bool:
    return listener.get("port") == HBONE_PORT and listener.get("protocol") == "HBONE"


def service_host(gateway: Mapping[str, Any], cluster_domain: str) -> str:
    namespace = (gateway.get("metadata") or {}).get("namespace")
    return f"{deployment_name(gateway)}.{namespace}.svc.{cluster_domain}"


def _cluster_ips(service: Mapping[str, Any] | None) -> list[str]:
    if service is None:
        return []
    spec = service.get("spec") or {}
    ips = [str(ip) for ip in spec.get("clusterIPs") or ()] or (
        [str(spec["clusterIP"])] if spec.get("clusterIP") else []
    )
    return [ip for ip in ips if ip != "None"]


def _address(value: str) -> dict[str, str]:
    try:
        ip_address(value)
    except ValueError:
        return {"type": "Hostname", "value": value}
    return {"type": "IPAddress", "value": value}


def gateway_status(
    gateway: Mapping[str, Any],
    service: Mapping[str, Any] | None,
    *,
    attached_routes: int,
    cluster_domain: str,
    now: str,
    invalid_parameters: str | None = None,
) -> dict[str, Any]:
    """The whole ``status`` of one waypoint Gateway; ``invalid_parameters`` says why its
    parametersRef could not be used (its objects are then left as they are)."""
    current = gateway.get("status") or {}
    generation = (gateway.get("metadata") or {}).get("generation")
    listeners = list((gateway.get("spec") or {}).get("listeners") or ())
    valid = [listener for listener in listeners if listener_valid(listener)]
    host = service_host(gateway, cluster_domain)

    if invalid_parameters is not None:
        accepted = Condition("Accepted", False, "InvalidParameters", invalid_parameters)
    elif listeners and not valid:
        accepted = Condition(
            "Accepted", False, "ListenersNotValid", "None of the Gateway's listeners are valid"
        )
    elif len(valid) < len(listeners):
        accepted = Condition(
            "Accepted",
            True,
            "ListenersNotValid",
            "One or more of the Gateway's listeners are invalid",
        )
    else:
        accepted = Condition("Accepted", True, "Accepted", "Resource accepted")
    ips = _cluster_ips(service)
    if ips:
        programmed = Condition(
            "Programmed",
            True,
            "Programmed",
            f"Resource programmed, assigned to service(s) {host}:{HBONE_PORT}",
        )
        addresses = [_address(ip) for ip in ips] + [_address(host)]
    else:
        programmed = Condition(
            "Programmed",
            False,
            "AddressNotUsable",
            f'Failed to assign to any requested addresses: hostname "{host}" not found',
        )
        # Never take an address back: ztunnels would lose the waypoint meanwhile.
        addresses = list(current.get("addresses") or ())
    wanted = [
        accepted,
        programmed,
        Condition("ResolvedRefs", True, "ResolvedRefs", "All references resolved"),
    ]
    status: dict[str, Any] = {
        "conditions": conditions(current.get("conditions") or (), wanted, generation, now),
        "listeners": _listener_statuses(current, listeners, attached_routes, generation, now),
    }
    if addresses:
        status["addresses"] = addresses
    return status


def _listener_statuses(
    current: Mapping[str, Any],
    listeners: Sequence[Mapping[str, Any]],
    attached_routes: int,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    previous = {str(entry.get("name")): entry for entry in current.get("listeners") or ()}
    result = []
    for listener in listeners:
        name = str(listener.get("name") or "")
        ok = listener_valid(listener)
        accepted = (
            Condition("Accepted", True, "Accepted", "No errors found")
            if ok
            else Condition(
                "Accepted",
                False,
                "UnsupportedProtocol",
                f'Expected a single listener on port {HBONE_PORT} with protocol "HBONE"',
            )
        )
        wanted = [
            accepted,
            Condition("Conflicted", False, "NoConflicts", "No errors found"),
            Condition("Programmed", True, "Programmed", "No errors found"),
            Condition("ResolvedRefs", True, "ResolvedRefs", "No errors found"),
        ]
        before = previous.get(name) or {}
        result.append(
            {
                "name": name,
                "attachedRoutes": attached_routes if ok else 0,
                "supportedKinds": [dict(kind) for kind in SUPPORTED_KINDS],
                "conditions": conditions(before.get("conditions") or (), wanted, generation, now),
            }
        )
    return result


def gateway_class_status(gateway_class: Mapping[str, Any], now: str) -> dict[str, Any] | None:
    """``Accepted`` for a class of our controller; ``None`` for anybody else's."""
    if (gateway_class.get("spec") or {}).get("controllerName") != CONTROLLER_NAME:
        return None
    current = gateway_class.get("status") or {}
    generation = (gateway_class.get("metadata") or {}).get("generation")
    wanted = [Condition("Accepted", True, "Accepted", "Handled by Istio controller")]
    return {"conditions": conditions(current.get("conditions") or (), wanted, generation, now)}


def differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing ``wanted`` would change anything (only our fields compared)."""
    current = current or {}
    return any(current.get(key) != value for key, value in wanted.items())
