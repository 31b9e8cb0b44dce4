"""credentialName Secrets become SDS secrets by istiod's rules (pilot/pkg/credentials/kube)."""

from __future__ import annotations

import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from xds.model.core import Secret
from xds.model.frozen import FrozenMap
from xds.model.meta import ObjectMeta
from xds.translate.secrets import (
    CredentialProblem,
    credential_resource_names,
    credential_secrets,
)


def secret(name: str, **data: bytes) -> Secret:
    """Keys spelt with "_" for "." (``tls_crt=...``)."""
    keys = {key.replace("_", ".").replace("ocsp.", "ocsp-"): value for key, value in data.items()}
    return Secret(meta=ObjectMeta(name=name, namespace="shop"), data=FrozenMap(keys))


def decoded(secrets: list[Secret], *, with_keys: bool = True) -> dict[str, dict[str, bytes]]:
    """name -> the parts of each SDS secret that were set."""
    resources, _ = credential_secrets(secrets, with_keys=with_keys)
    result: dict[str, dict[str, bytes]] = {}
    for resource in resources:
        body = secret_pb2.Secret.FromString(resource.body)
        assert body.name == resource.name
        parts: dict[str, bytes] = {}
        if body.HasField("tls_certificate"):
            parts["chain"] = body.tls_certificate.certificate_chain.inline_bytes
            parts["key"] = body.tls_certificate.private_key.inline_bytes
            if body.tls_certificate.HasField("ocsp_staple"):
                parts["staple"] = body.tls_certificate.ocsp_staple.inline_bytes
        else:
            parts["ca"] = body.validation_context.trusted_ca.inline_bytes
            if body.validation_context.HasField("crl"):
                parts["crl"] = body.validation_context.crl.inline_bytes
        result[resource.name] = parts
    return result


CASES = [
    pytest.param(
        [secret("tls", tls_crt=b"C", tls_key=b"K", ca_crt=b"A")],
        {
            "kubernetes://tls": {"chain": b"C", "key": b"K"},
            "kubernetes://tls-cacert": {"ca": b"A"},
        },
        id="kubernetes.io/tls with ca.crt",
    ),
    pytest.param(
        [secret("g", cert=b"C", key=b"K", cacert=b"A", crl=b"R", tls_crt=b"X", tls_key=b"Y")],
        {
            "kubernetes://g": {"chain": b"C", "key": b"K"},
            "kubernetes://g-cacert": {"ca": b"A", "crl": b"R"},
        },
        id="generic keys win over the tls ones",
    ),
    pytest.param(
        [secret("s", tls_crt=b"C", tls_key=b"K", tls_ocsp_staple=b"O", ca_crt=b"A", ca_crl=b"R")],
        {
            "kubernetes://s": {"chain": b"C", "key": b"K", "staple": b"O"},
            "kubernetes://s-cacert": {"ca": b"A", "crl": b"R"},
        },
        id="staple and CRL",
    ),
    pytest.param(
        [
            secret("pair", tls_crt=b"C", tls_key=b"K", ca_crt=b"old"),
            secret("pair-cacert", cacert=b"A"),
        ],
        {
            "kubernetes://pair": {"chain": b"C", "key": b"K"},
            # The separate -cacert Secret is the CA bundle (and its name is one too).
            "kubernetes://pair-cacert": {"ca": b"A"},
            "kubernetes://pair-cacert-cacert": {"ca": b"A"},
        },
        id="a separate -cacert Secret wins",
    ),
    pytest.param(
        [secret("ca-only", ca_crt=b"A")],
        {"kubernetes://ca-only-cacert": {"ca": b"A"}},
        id="CA bundle only",
    ),
    pytest.param([secret("opaque")], {}, id="nothing of a credential"),
]


@pytest.mark.parametrize(("secrets", "expected"), CASES)
def test_credential_secrets(secrets: list[Secret], expected: dict[str, dict[str, bytes]]) -> None:
    assert decoded(secrets) == expected


def test_without_key_access_only_ca_bundles() -> None:
    secrets = [secret("tls", tls_crt=b"C", tls_key=b"K", ca_crt=b"A")]
    assert decoded(secrets, with_keys=False) == {"kubernetes://tls-cacert": {"ca": b"A"}}


def test_empty_values_are_problems_not_credentials() -> None:
    resources, problems = credential_secrets(
        [secret("bad", tls_crt=b"", tls_key=b"", ca_crt=b"")], with_keys=True
    )
    assert resources == []
    assert problems == [
        CredentialProblem("bad", "found keys 'tls.crt' and 'tls.key', but they are empty"),
        CredentialProblem("bad", "found key 'ca.crt', but it is empty"),
    ]


@pytest.mark.parametrize(
    ("credential_name", "names"),
    [
        ("client", ("kubernetes://client", "kubernetes://client-cacert")),
        ("kubernetes://client", ("kubernetes://client", "kubernetes://client-cacert")),
        ("builtin://", ("default", "ROOTCA")),
    ],
)
def test_credential_resource_names(credential_name: str, names: tuple[str, str]) -> None:
    assert credential_resource_names(credential_name) == names
