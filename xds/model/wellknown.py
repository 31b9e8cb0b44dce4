"""Labels and annotations with a meaning in ambient mode (ambient-index §1.3).

Kept in one place so translators use the exact spelling and a reader can see
at a glance which metadata keys change the generated configuration.
"""

from typing import Final

# Waypoint selection and waypoint instances.
USE_WAYPOINT: Final = "istio.io/use-waypoint"
USE_WAYPOINT_NAMESPACE: Final = "istio.io/use-waypoint-namespace"
USE_WAYPOINT_CANARY: Final = "istio.io/use-waypoint-canary"
USE_WAYPOINT_CANARY_NAMESPACE: Final = "istio.io/use-waypoint-canary-namespace"
USE_WAYPOINT_CANARY_WEIGHT: Final = "istio.io/use-waypoint-canary-weight"  # annotation
WAYPOINT_FOR: Final = "istio.io/waypoint-for"
WAYPOINT_INBOUND_BINDING: Final = "ambient.istio.io/waypoint-inbound-binding"  # annotation
INGRESS_USE_WAYPOINT: Final = "istio.io/ingress-use-waypoint"
GATEWAY_NAME: Final = "gateway.networking.k8s.io/gateway-name"
GATEWAY_MANAGED: Final = "gateway.istio.io/managed"
MANAGED_BY_MESH_CONTROLLER: Final = "istio.io-mesh-controller"
MANAGED_BY_EASTWEST_CONTROLLER: Final = "istio.io-eastwest-controller"

# Data plane enrollment and tunnelling.
DATAPLANE_MODE: Final = "istio.io/dataplane-mode"
AMBIENT_REDIRECTION: Final = "ambient.istio.io/redirection"  # annotation, written by istio-cni
TUNNEL: Final = "networking.istio.io/tunnel"
TLS_MODE: Final = "security.istio.io/tlsMode"
SIDECAR_STATUS: Final = "sidecar.istio.io/status"  # annotation

# Topology.
NETWORK: Final = "topology.istio.io/network"
REGION: Final = "topology.kubernetes.io/region"
ZONE: Final = "topology.kubernetes.io/zone"
SUBZONE: Final = "topology.istio.io/subzone"
TRAFFIC_DISTRIBUTION: Final = "networking.istio.io/traffic-distribution"  # annotation

# Workload naming.
CANONICAL_NAME: Final = "service.istio.io/canonical-name"
CANONICAL_REVISION: Final = "service.istio.io/canonical-revision"
APP_NAME: Final = "app.kubernetes.io/name"
APP_VERSION: Final = "app.kubernetes.io/version"
APP: Final = "app"
VERSION: Final = "version"
WORKLOAD_NAME: Final = "service.istio.io/workload-name"
AUTO_REGISTRATION_GROUP: Final = "istio.io/autoRegistrationGroup"  # annotation, WorkloadEntry

# Policy and revisions.
DRY_RUN: Final = "istio.io/dry-run"  # annotation, AuthorizationPolicy
REVISION: Final = "istio.io/rev"
ENABLE_AUTOALLOCATE_IP: Final = "networking.istio.io/enable-autoallocate-ip"  # ServiceEntry
CONNECT_STRATEGY: Final = "istio.io/connect-strategy"  # annotation, ServiceEntry

# EndpointSlice → Service.
SERVICE_NAME: Final = "kubernetes.io/service-name"
