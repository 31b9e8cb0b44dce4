"""Node ids: istiod's convention, and nothing a client could smuggle into logs."""

from __future__ import annotations

import pytest

from xds.serving.node import MAX_NODE_ID, InvalidNode, ProxyType, parse_node_id


@pytest.mark.parametrize(
    ("node_id", "proxy_type", "pod", "namespace"),
    [
        (
            "ztunnel~10.0.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local",
            ProxyType.ZTUNNEL,
            "ztunnel-abc",
            "istio-system",
        ),
        (
            "waypoint~fd00::1~waypoint-5d7f-x1.shop~shop.svc.cluster.local",
            ProxyType.WAYPOINT,
            "waypoint-5d7f-x1",
            "shop",
        ),
        (
            "sidecar~0.0.0.0~istioctl.istio-system~cluster.local",
            ProxyType.SIDECAR,
            "istioctl",
            "istio-system",
        ),
        ("router~10.0.0.2~gw.with.dots.ns~", ProxyType.ROUTER, "gw.with.dots", "ns"),
    ],
)
def test_valid_node_ids(node_id: str, proxy_type: ProxyType, pod: str, namespace: str) -> None:
    node = parse_node_id(node_id)
    assert (node.type, node.pod_name, node.namespace) == (proxy_type, pod, namespace)


@pytest.mark.parametrize(
    ("node_id", "message"),
    [
        ("", "node.id is empty"),
        ("ztunnel~10.0.0.1~a.b", "has 3 '~'-separated parts"),
        ("gateway~10.0.0.1~a.b~c", "unknown proxy type 'gateway'"),
        ("ztunnel~10.0.0.300~a.b~c", "'10.0.0.300' is not an IP address"),
        ("ztunnel~10.0.0.1~nodot~c", "third part must be <pod>.<namespace>"),
        ("ztunnel~10.0.0.1~Pod_1.ns~c", "'Pod_1' is not a pod name"),
        ("ztunnel~10.0.0.1~pod.Name-Space~c", "'Name-Space' is not a namespace name"),
        ("ztunnel~10.0.0.1~pod.ns~evil\nline", "is not a DNS domain"),
        ("ztunnel~10.0.0.1~" + "a" * 2000 + ".ns~c", f"at most {MAX_NODE_ID}"),
    ],
)
def test_invalid_node_ids_say_why_briefly(node_id: str, message: str) -> None:
    with pytest.raises(InvalidNode) as raised:
        parse_node_id(node_id)
    assert message in str(raised.value)
    assert len(str(raised.value)) < 400  # a 1 MB id is not echoed back, nor logged
