"""Translation for ztunnel: Address (Workload, Service) and Authorization resources.

Modules, each with one job:
    context             mesh-wide values (cluster id, network, trust domain, suffix, root ns)
    addresses           IPs, network and gateway addresses in wire form; resource aliases
    names               uids, workload names, canonical service name/revision
    enrollment          tunnel_protocol / native_tunnel (who is captured in ambient)
    protocols           Port.app_protocol inference
    services            Service / ServiceEntry -> istio.workload.Service, hostname selection
    workloads           Pod / WorkloadEntry / ServiceEntry endpoint / EndpointSlice -> Workload
    authorization       AuthorizationPolicy -> istio.security.Authorization
    peer_authentication PeerAuthentication -> synthetic DENY policies and workload references
    policies            Workload.authorization_policies
    index               derived state the translator keeps between calls
    translator          ZtunnelTranslator: incremental orchestration
"""

from xds.translate.ztunnel.translator import ZtunnelTranslator

__all__ = ["ZtunnelTranslator"]
