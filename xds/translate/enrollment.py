"""Who speaks HBONE: ``Workload.tunnel_protocol`` and ``native_tunnel``.

istiod sets ``tunnel_protocol = HBONE`` when istio-cni has annotated the pod
``ambient.istio.io/redirection: enabled`` (after it set up the redirection),
and ``HBONE`` plus ``native_tunnel`` when the label ``networking.istio.io/tunnel``
lists ``http`` (proxies that terminate HBONE themselves). It never reads
``istio.io/dataplane-mode``.

Our decision (ambient-index §2.2 leaves it to us):

* The annotation, when present, is authoritative both ways: a cluster that
  runs stock istio-cni next to us gets exactly istiod's behaviour, including
  ``pending``/``disabled`` meaning "not captured (yet)".
* When the annotation is absent (file mode, or a cluster without istio-cni
  writing it) we compute what istio-cni's default enablement selector would
  decide from labels: the pod's ``istio.io/dataplane-mode=ambient``, or the
  namespace's ``istio.io/dataplane-mode=ambient`` unless the pod says ``none``;
  never for host-network pods, sidecar-injected pods, or pods in
  ``kube-system``. Without this, a manifest directory could never describe an
  ambient pod without also faking the CNI's bookkeeping annotation.

Only pods are ever captured by istio-cni, so WorkloadEntries and ServiceEntry
endpoints keep istiod's rule (annotation or tunnel label only).
``LEGACY_ISTIO_MTLS`` is never produced: istiod only sets it behind an
internal flag that is off in production, and ztunnel up to 1.31 NACKs it.
"""

from __future__ import annotations

from collections.abc import Mapping

from xds.model import wellknown
from xds.model.core import Pod
from xds.proto.istio.workload import workload_pb2 as wl

REDIRECTION_ENABLED = "enabled"
AMBIENT = "ambient"
NOT_ENROLLED = "none"
EXCLUDED_NAMESPACES = frozenset({"kube-system"})
"""istio-cni's default ``ambient.excludeNamespaces``."""


def supports_http_tunnel(labels: Mapping[str, str]) -> bool:
    """``networking.istio.io/tunnel`` is a comma-separated list containing ``http``."""
    value = labels.get(wellknown.TUNNEL)
    return value is not None and "http" in value.split(",")


def would_be_enrolled(pod: Pod, namespace_labels: Mapping[str, str]) -> bool:
    """istio-cni's default enablement selector, evaluated on labels."""
    if pod.host_network or wellknown.SIDECAR_STATUS in pod.annotations:
        return False
    if pod.namespace in EXCLUDED_NAMESPACES:
        return False
    mode = pod.labels.get(wellknown.DATAPLANE_MODE)
    if mode == AMBIENT:
        return True
    return mode != NOT_ENROLLED and namespace_labels.get(wellknown.DATAPLANE_MODE) == AMBIENT


def pod_tunnel(pod: Pod, namespace_labels: Mapping[str, str]) -> tuple[wl.TunnelProtocol, bool]:
    """``(tunnel_protocol, native_tunnel)`` for a pod."""
    redirection = pod.annotations.get(wellknown.AMBIENT_REDIRECTION)
    if redirection is not None:
        captured = redirection == REDIRECTION_ENABLED
    else:
        captured = would_be_enrolled(pod, namespace_labels)
    return _tunnel(captured, pod.labels)


def declared_tunnel(
    labels: Mapping[str, str], annotations: Mapping[str, str]
) -> tuple[wl.TunnelProtocol, bool]:
    """istiod's rule for WorkloadEntries and ServiceEntry endpoints."""
    return _tunnel(annotations.get(wellknown.AMBIENT_REDIRECTION) == REDIRECTION_ENABLED, labels)


def _tunnel(captured: bool, labels: Mapping[str, str]) -> tuple[wl.TunnelProtocol, bool]:
    if supports_http_tunnel(labels):
        return wl.HBONE, True
    return (wl.HBONE if captured else wl.NONE), False
