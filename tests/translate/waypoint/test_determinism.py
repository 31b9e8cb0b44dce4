"""The same config gives the same bytes however it was built: resource versions are
hashes of the bytes, so a restarted server or another worker must not see a change
where there is none."""

from __future__ import annotations

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2

from xds.translate.waypoint.protos import typed


def rbac_filter(names: list[str]) -> http_rbac_pb2.RBAC:
    rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
    for name in names:  # a map field: insertion order is how the policies were collected
        rules.policies[name].permissions.add(any=True)
        rules.policies[name].principals.add(any=True)
    return http_rbac_pb2.RBAC(rules=rules)


def test_packed_maps_do_not_depend_on_insertion_order() -> None:
    names = [f"ns.policy-{index}" for index in range(50)]
    forward = typed(rbac_filter(names)).value
    backward = typed(rbac_filter(names[::-1])).value
    assert forward == backward
