"""Envoy SDS secrets for a stock waypoint: ``default`` (its key and chain) and ``ROOTCA``.

These are the two names Istio's generated config refers to (waypoint.md §8);
with no istio-agent beside Envoy, the control plane serves them over ADS.
"""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.resources import Resource
from xds.type_urls import SECRET

WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"


def workload_secrets(
    certificate_chain_pem: bytes, private_key_pem: bytes, root_pem: bytes
) -> list[Resource]:
    workload = secret_pb2.Secret(name=WORKLOAD_SECRET)
    workload.tls_certificate.certificate_chain.inline_bytes = certificate_chain_pem
    workload.tls_certificate.private_key.inline_bytes = private_key_pem
    root = secret_pb2.Secret(name=ROOT_SECRET)
    root.validation_context.trusted_ca.inline_bytes = root_pem
    return [
        Resource.from_message(SECRET, WORKLOAD_SECRET, workload),
        Resource.from_message(SECRET, ROOT_SECRET, root),
    ]
