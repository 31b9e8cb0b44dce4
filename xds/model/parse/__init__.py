"""Turn a decoded Kubernetes object (YAML/JSON from a file or the API server) into a model object.

``parse_object`` is the single entry point. It dispatches on the API group
(any version) and kind; kinds the control plane does not model give ``None``
so that a directory of ordinary cluster manifests can be loaded as-is.
Invalid objects raise ``ManifestError`` naming the object and field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from xds.model.core import (
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    Secret,
    Service,
    ServiceAccount,
)
from xds.model.errors import ManifestError
from xds.model.gateway import (
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ReferenceGrant,
    TCPRoute,
    TLSRoute,
)
from xds.model.meta import KubeObject, ObjectMeta
from xds.model.networking import DestinationRule, ServiceEntry, VirtualService, WorkloadEntry
from xds.model.parse import core, gateway, networking, security, telemetry
from xds.model.parse.meta import read_metadata
from xds.model.parse.reader import ObjectRef, Reader, parse_duration
from xds.model.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication
from xds.model.telemetry import Telemetry

Parser = Callable[[Reader, ObjectMeta], KubeObject]

_PARSERS: dict[type[KubeObject], Parser] = {
    Namespace: core.parse_namespace,
    Node: core.parse_node,
    Pod: core.parse_pod,
    Service: core.parse_service,
    ServiceAccount: core.parse_service_account,
    EndpointSlice: core.parse_endpoint_slice,
    Secret: core.parse_secret,
    GatewayClass: gateway.parse_gateway_class,
    Gateway: gateway.parse_gateway,
    HTTPRoute: gateway.parse_http_route,
    GRPCRoute: gateway.parse_grpc_route,
    TCPRoute: gateway.parse_tcp_route,
    TLSRoute: gateway.parse_tls_route,
    ReferenceGrant: gateway.parse_reference_grant,
    AuthorizationPolicy: security.parse_authorization_policy,
    PeerAuthentication: security.parse_peer_authentication,
    RequestAuthentication: security.parse_request_authentication,
    Telemetry: telemetry.parse_telemetry,
    ServiceEntry: networking.parse_service_entry,
    WorkloadEntry: networking.parse_workload_entry,
    VirtualService: networking.parse_virtual_service,
    DestinationRule: networking.parse_destination_rule,
}

MODEL_KINDS: tuple[type[KubeObject], ...] = tuple(_PARSERS)
"""Every modelled kind, e.g. for a Kubernetes source deciding what to watch."""

_BY_GROUP_KIND: dict[tuple[str, str], type[KubeObject]] = {
    (cls.api_group, cls.kind): cls for cls in _PARSERS
}


def model_class(api_version: str, kind: str) -> type[KubeObject] | None:
    """The model class for ``apiVersion``/``kind``, or ``None`` when not modelled.

    Any version of a group is accepted (``v1``, ``v1beta1``, ...): the fields
    the control plane reads are the same across the served versions.
    """
    group = api_version.rpartition("/")[0]  # "v1" -> "", "apps/v1" -> "apps"
    return _BY_GROUP_KIND.get((group, kind))


# A Kubernetes API version: v1, v1beta1, v2alpha3... The core group has only v1.
_VERSION = re.compile(r"v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?")
_KINDS_GROUPS: dict[str, tuple[str, ...]] = {}
for _cls in _PARSERS:
    _KINDS_GROUPS[_cls.kind] = (*_KINDS_GROUPS.get(_cls.kind, ()), _cls.api_group)


def misspelt_group(api_version: str, kind: str) -> str | None:
    """The modelled group that ``api_version`` most likely meant for ``kind``, when the
    kind is one we model and its group is a near miss of ours (``secuirty.istio.io``);
    ``None`` when it looks deliberate (Istio's own ``networking.istio.io`` Gateway,
    a Knative Service...)."""
    group = api_version.rpartition("/")[0]
    for candidate in _KINDS_GROUPS.get(kind, ()):
        if (
            candidate
            and group != candidate
            and difflib.SequenceMatcher(None, group, candidate).ratio() >= 0.85
        ):
            return candidate
    return None


def parse_object(document: object) -> KubeObject | None:
    """Parse one Kubernetes object; ``None`` for kinds the model does not cover.

    See :func:`parse_with_notes` for the errors, and for the fields it ignores."""
    return parse_with_notes(document)[0]


# Kinds whose spec we read only in part by design (a Pod's containers, a Service's
# session affinity...): their other fields are not "ignored configuration".
_PARTLY_READ_GROUPS = frozenset({"", "discovery.k8s.io"})


def parse_with_notes(document: object) -> tuple[KubeObject | None, tuple[str, ...]]:
    """Parse one Kubernetes object, and list the ``spec`` fields of an Istio or Gateway
    API object that the model does not read (so a user can be told their setting has
    no effect here, rather than have it dropped without a word).

    Raises ``ManifestError`` for a document that is not an object, lacks
    ``apiVersion``/``kind``/``metadata.name``, has an invalid field, names a modelled
    kind in a misspelt group (that would silently drop, say, a DENY policy), or a
    version that no API server serves (``v9`` for a core Pod).
    """
    ref = ObjectRef()
    doc = Reader(document, "", ref)
    if not isinstance(document, Mapping):
        doc.fail("expected a Kubernetes object (a mapping with apiVersion and kind)")
    kind = doc.required_string("kind")
    ref.kind = kind
    api_version = doc.required_string("apiVersion")
    cls = model_class(api_version, kind)
    if cls is None:
        meant = misspelt_group(api_version, kind)
        if meant is not None:
            _, ref.namespace, ref.name = object_identity(document)
            doc.fail(
                f"apiVersion {api_version}: {kind} is not served in that group; "
                f"did you mean {meant}? (the object is not used)",
                "apiVersion",
            )
        return None, ()
    group, _, version = api_version.rpartition("/")
    if not _VERSION.fullmatch(version) or (not group and version != "v1"):
        _, ref.namespace, ref.name = object_identity(document)
        doc.fail(
            f"apiVersion {api_version}: not a version of "
            f"{group or 'the core API'} (expected "
            f"{'v1' if not group else 'v1, v1beta1, v1alpha2...'})",
            "apiVersion",
        )
    if cls.api_group in _PARTLY_READ_GROUPS:
        return _PARSERS[cls](doc, read_metadata(doc, cls.namespaced)), ()
    tracked = Reader(document, "", ref, track=True)
    obj = _PARSERS[cls](tracked, read_metadata(tracked, cls.namespaced))
    return obj, tracked.obj("spec").unread()


def object_identity(document: object) -> tuple[str | None, str | None, str | None]:
    """Best-effort ``(kind, namespace, name)`` of a raw document, for error reports."""
    if not isinstance(document, Mapping):
        return None, None, None
    metadata: Any = document.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    return text(document.get("kind")), text(metadata.get("namespace")), text(metadata.get("name"))


__all__ = [
    "MODEL_KINDS",
    "ManifestError",
    "model_class",
    "object_identity",
    "parse_duration",
    "parse_object",
    "parse_with_notes",
]
