"""The mesh model: plain, typed, immutable data for the Kubernetes objects we read.

Layering: sources parse manifests into these objects (``xds.model.parse``)
and apply them to a ``MeshStore``; translators read the store through the
``Mesh`` protocol. Nothing here does I/O or knows about protobuf.

Modules:
    frozen      FrozenMap, the hashable mapping used for labels and other maps
    meta        ObjectKey, ObjectMeta, KubeObject (the base), LabelSelector
    core        Namespace, Node, Pod, Service, ServiceAccount, EndpointSlice
    gateway     GatewayClass, Gateway, HTTPRoute, GRPCRoute, TCPRoute, TLSRoute
    security    AuthorizationPolicy, PeerAuthentication
    networking  ServiceEntry, WorkloadEntry, VirtualService, DestinationRule
    wellknown   label and annotation names with a meaning in ambient mode
    parse       parse_object(document) -> KubeObject | None
    mesh        MeshConfig, ChangeSet, Mesh (read-only protocol), MeshStore
"""

from xds.model import (  # the modules themselves, for ``pickling``
    core,
    errors,
    frozen,
    gateway,
    mesh,
    meta,
    networking,
    pickling,
    security,
    telemetry,
)
from xds.model.core import (
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    Service,
    ServiceAccount,
)
from xds.model.errors import ManifestError
from xds.model.frozen import EMPTY_LABELS, FrozenMap, Labels
from xds.model.gateway import Gateway, GatewayClass, GRPCRoute, HTTPRoute, TCPRoute, TLSRoute
from xds.model.mesh import ChangeSet, Mesh, MeshConfig, MeshStore
from xds.model.meta import (
    IPAddress,
    KubeObject,
    LabelSelector,
    ObjectKey,
    ObjectMeta,
    parse_ip,
)
from xds.model.networking import DestinationRule, ServiceEntry, VirtualService, WorkloadEntry
from xds.model.parse import MODEL_KINDS, parse_object
from xds.model.security import AuthorizationPolicy, PeerAuthentication

pickling.install(core, errors, frozen, gateway, mesh, meta, networking, security, telemetry)

__all__ = [
    "EMPTY_LABELS",
    "MODEL_KINDS",
    "AuthorizationPolicy",
    "ChangeSet",
    "DestinationRule",
    "EndpointSlice",
    "FrozenMap",
    "GRPCRoute",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "IPAddress",
    "KubeObject",
    "LabelSelector",
    "Labels",
    "ManifestError",
    "Mesh",
    "MeshConfig",
    "MeshStore",
    "Namespace",
    "Node",
    "ObjectKey",
    "ObjectMeta",
    "PeerAuthentication",
    "Pod",
    "Service",
    "ServiceAccount",
    "ServiceEntry",
    "TCPRoute",
    "TLSRoute",
    "VirtualService",
    "WorkloadEntry",
    "parse_ip",
    "parse_object",
]
