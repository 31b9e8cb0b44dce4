"""Field numbers on the wire, checked with a decoder written here from the protobuf spec.

Comparing against messages built with our own generated classes cannot catch a
wrong field number in our .proto files; decoding the raw bytes by tag can.
The numbers below are ztunnel's (proto/workload.proto, proto/authorization.proto).
"""

from __future__ import annotations

from tests.translate.ztunnel.fixtures import ip, translate

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` in order; length-delimited values as bytes."""
    result: list[tuple[int, int, int | bytes]] = []
    offset = 0
    while offset < len(data):
        tag, offset = read_varint(data, offset)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == VARINT:
            value, offset = read_varint(data, offset)
        elif wire_type == LENGTH:
            length, offset = read_varint(data, offset)
            value = data[offset : offset + length]
            offset += length
        elif wire_type == FIXED32:
            value, offset = int.from_bytes(data[offset : offset + 4], "little"), offset + 4
        elif wire_type == FIXED64:
            value, offset = int.from_bytes(data[offset : offset + 8], "little"), offset + 8
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        result.append((number, wire_type, value))
    assert offset == len(data)
    return result


def by_number(data: bytes) -> dict[int, list[int | bytes]]:
    grouped: dict[int, list[int | bytes]] = {}
    for number, _, value in fields(data):
        grouped.setdefault(number, []).append(value)
    return grouped


def only_bytes(values: list[int | bytes]) -> bytes:
    assert len(values) == 1 and isinstance(values[0], bytes)
    return values[0]


MANIFESTS = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: ns1, labels: {istio.io/waypoint-for: all}}
spec: {gatewayClassName: istio-waypoint}
status: {addresses: [{type: Hostname, value: waypoint.ns1.svc.cluster.local}]}
---
apiVersion: v1
kind: Service
metadata: {name: svc1, namespace: ns1}
spec: {clusterIP: 10.96.0.1, selector: {app: a}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: pod1
  namespace: ns1
  labels: {app: a, istio.io/use-waypoint: waypoint}
  annotations: {ambient.istio.io/redirection: enabled}
spec: {serviceAccountName: sa1, nodeName: node1}
status: {phase: Running, podIP: 10.0.0.1, conditions: [{type: Ready, status: 'True'}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pol, namespace: ns1}
spec:
  action: DENY
  selector: {matchLabels: {app: a}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/x/sa/y]}}]
    to: [{operation: {ports: ["8080"]}}]
"""


def test_workload_field_numbers() -> None:
    resource = translate(MANIFESTS).addresses["cluster0//Pod/ns1/pod1"]
    address = by_number(resource.body)
    assert set(address) == {1}  # Address.workload; Address.service is 2
    workload = by_number(only_bytes(address[1]))
    assert workload[20] == [b"cluster0//Pod/ns1/pod1"]  # uid
    assert workload[1] == [b"pod1"]  # name
    assert workload[2] == [b"ns1"]  # namespace
    assert workload[3] == [ip("10.0.0.1")]  # addresses, raw bytes
    assert workload[5] == [1]  # tunnel_protocol HBONE
    assert workload[7] == [b"sa1"]  # service_account
    assert workload[9] == [b"node1"]  # node
    assert workload[12] == [2]  # workload_type POD
    assert workload[16] == [b"ns1/pol"]  # authorization_policies
    assert workload[18] == [b"cluster0"]  # cluster_id
    assert 17 not in workload  # status HEALTHY is the zero value
    waypoint = by_number(only_bytes(workload[8]))  # waypoint: GatewayAddress
    assert waypoint[3] == [15008]  # hbone_mtls_port
    hostname = by_number(only_bytes(waypoint[1]))  # GatewayAddress.hostname
    assert hostname == {1: [b"ns1"], 2: [b"waypoint.ns1.svc.cluster.local"]}
    # services (22) is a map<string, PortList>: entries with key=1, value=2.
    entry = by_number(only_bytes(workload[22]))
    assert entry[1] == [b"ns1/svc1.ns1.svc.cluster.local"]
    port_list = by_number(only_bytes(entry[2]))
    assert by_number(only_bytes(port_list[1])) == {1: [80], 2: [8080]}  # Port


def test_service_field_numbers() -> None:
    resource = translate(MANIFESTS).addresses["ns1/svc1.ns1.svc.cluster.local"]
    address = by_number(resource.body)
    assert set(address) == {2}
    service = by_number(only_bytes(address[2]))
    assert service[1] == [b"svc1"] and service[2] == [b"ns1"]
    assert service[3] == [b"svc1.ns1.svc.cluster.local"]  # hostname
    vip = by_number(only_bytes(service[4]))  # NetworkAddress
    assert vip == {2: [ip("10.96.0.1")]}  # empty network omitted, no length
    assert by_number(only_bytes(service[5])) == {1: [80], 2: [8080]}  # ports, no app protocol
    assert service[11] == [1]  # canonical


def test_authorization_field_numbers() -> None:
    resource = translate(MANIFESTS).authorizations["ns1/pol"]
    authorization = by_number(resource.body)
    assert authorization[1] == [b"pol"] and authorization[2] == [b"ns1"]
    assert authorization[3] == [2]  # scope WORKLOAD_SELECTOR
    assert authorization[4] == [1]  # action DENY
    rule = by_number(only_bytes(authorization[5]))  # Authorization.rules (istiod: groups)
    clauses = rule[1]  # Rule.clauses (istiod: rules), AND-ed
    assert len(clauses) == 2
    to_clause, from_clause = (by_number(c) for c in clauses if isinstance(c, bytes))
    assert set(to_clause) == {2}  # Clause.matches is field 2; field 1 is unused
    to_match = by_number(only_bytes(to_clause[2]))
    # destination_ports (9) is a packed repeated uint32.
    assert to_match == {9: [bytes([0x90, 0x3F])]}  # 8080 as a varint inside the packed run
    from_match = by_number(only_bytes(from_clause[2]))
    principal = by_number(only_bytes(from_match[3]))  # Match.principals -> StringMatch
    assert principal == {1: [b"cluster.local/ns/x/sa/y"]}  # StringMatch.exact
