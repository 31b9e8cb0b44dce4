"""Envoy SDS secrets for a stock waypoint.

``default`` (its key and chain) and ``ROOTCA`` are the two names Istio's generated
config refers to (waypoint.md §8); with no istio-agent beside Envoy, the control plane
serves them over ADS. A DestinationRule's ``credentialName`` adds Kubernetes Secrets
as ``kubernetes://<name>`` (certificate and key) and ``kubernetes://<name>-cacert``
(CA bundle), read as istiod reads them (pilot/pkg/credentials/kube/secrets.go).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.model.core import Secret
from xds.resources import Resource
from xds.type_urls import SECRET

WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"

KUBERNETES_PREFIX = "kubernetes://"
BUILTIN_PREFIX = "builtin://"
CA_SUFFIX = "-cacert"


def workload_secrets(
    certificate_chain_pem: bytes, private_key_pem: bytes, root_pem: bytes
) -> list[Resource]:
    return [
        _tls_certificate(WORKLOAD_SECRET, certificate_chain_pem, private_key_pem, None),
        _validation_context(ROOT_SECRET, root_pem, None),
    ]


def credential_resource_names(credential_name: str) -> tuple[str, str]:
    """The SDS names of a ``credentialName``: (certificate and key, CA bundle).

    ``builtin://`` is the proxy's own identity; a bare name or ``kubernetes://name`` a
    Secret in the proxy's namespace."""
    if credential_name.startswith(BUILTIN_PREFIX):
        return WORKLOAD_SECRET, ROOT_SECRET
    if not credential_name.startswith(KUBERNETES_PREFIX):
        credential_name = KUBERNETES_PREFIX + credential_name
    return credential_name, credential_name + CA_SUFFIX


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """A Secret that cannot be served as a credential (never says a value)."""

    secret: str
    reason: str


def credential_secrets(
    secrets: Iterable[Secret], *, with_keys: bool
) -> tuple[list[Resource], list[CredentialProblem]]:
    """The SDS secrets the Secrets of one namespace make, by istiod's rules.

    ``kubernetes://<s>-cacert`` is the CA bundle of Secret ``<s>-cacert`` if there is
    one, else of ``<s>``; ``kubernetes://<s>`` the certificate and key of ``<s>`` (only
    ``with_keys``: the proxy is authorized to read private keys), or its CA bundle when
    ``<s>`` itself ends in ``-cacert``. Secrets holding neither are not credentials."""
    by_name = {secret.name: secret for secret in secrets}
    resources: list[Resource] = []
    problems: list[CredentialProblem] = []
    for name in sorted(by_name):
        data = by_name[name].data
        ca_names = [name + CA_SUFFIX] if name + CA_SUFFIX not in by_name else []
        if name.endswith(CA_SUFFIX):
            ca_names.append(name)
        elif with_keys:
            try:
                pair = _certificate_and_key(data)
            except ValueError as error:
                problems.append(CredentialProblem(name, str(error)))
            else:
                if pair is not None:
                    resources.append(_tls_certificate(KUBERNETES_PREFIX + name, *pair))
        try:
            root = _ca_bundle(data)
        except ValueError as error:
            problems.append(CredentialProblem(name, str(error)))
            continue
        if root is not None:
            resources += [_validation_context(KUBERNETES_PREFIX + ca, *root) for ca in ca_names]
    return resources, problems


def _certificate_and_key(data: Mapping[str, bytes]) -> tuple[bytes, bytes, bytes | None] | None:
    """(chain, key, OCSP staple); the generic keys win over the kubernetes.io/tls ones, as
    in istiod. None when the Secret holds no key pair. (A CRL applies through the
    ``-cacert`` validation context, not the key pair's secret.)"""
    if data.get("cert") and data.get("key"):
        return data["cert"], data["key"], None
    if data.get("tls.crt") and data.get("tls.key"):
        return data["tls.crt"], data["tls.key"], data.get("tls.ocsp-staple") or None
    for cert, key in (("cert", "key"), ("tls.crt", "tls.key")):
        if cert in data and key in data:
            raise ValueError(f"found keys {cert!r} and {key!r}, but they are empty")
    return None


def _ca_bundle(data: Mapping[str, bytes]) -> tuple[bytes, bytes | None] | None:
    """(CA certificates, CRL); the generic ``cacert`` wins over ``ca.crt``."""
    if data.get("cacert"):
        return data["cacert"], data.get("crl") or None
    if data.get("ca.crt"):
        return data["ca.crt"], data.get("ca.crl") or None
    for key in ("cacert", "ca.crt"):
        if key in data:
            raise ValueError(f"found key {key!r}, but it is empty")
    return None


def _tls_certificate(name: str, chain: bytes, key: bytes, staple: bytes | None) -> Resource:
    secret = secret_pb2.Secret(name=name)
    secret.tls_certificate.certificate_chain.inline_bytes = chain
    secret.tls_certificate.private_key.inline_bytes = key
    if staple is not None:
        secret.tls_certificate.ocsp_staple.inline_bytes = staple
    return Resource.from_message(SECRET, name, secret)


def _validation_context(name: str, certificates: bytes, crl: bytes | None) -> Resource:
    secret = secret_pb2.Secret(name=name)
    secret.validation_context.trusted_ca.inline_bytes = certificates
    if crl is not None:
        secret.validation_context.crl.inline_bytes = crl
    return Resource.from_message(SECRET, name, secret)
