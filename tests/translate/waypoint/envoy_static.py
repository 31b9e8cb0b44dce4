"""Load generated waypoint snapshots into a real Envoy (``envoy --mode validate``).

A snapshot is what the translator puts in one waypoint scope. To check it
without a control plane, it becomes a static bootstrap: EDS clusters turn
STATIC with their ClusterLoadAssignment inlined (which also proves every EDS
cluster has one), SDS-over-ADS references become references to static
secrets, and the listeners are taken as they are. The runtime layers are the
served bootstrap's (``xds bootstrap waypoint``), so both run the same Envoy.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.protobuf.json_format import MessageToDict

from xds import type_urls
from xds.resources import Update, decode
from xds.translate.waypoint.bootstrap import runtime_layers

ENVOY = Path(sys.executable).parent / "envoy"
SECRET_NAMES = ("default", "ROOTCA")
NODE_ID = "waypoint~10.0.0.1~waypoint-0.default~default.svc.cluster.local"


@dataclass(frozen=True)
class Certificates:
    """A CA and a waypoint leaf certificate (SPIFFE URI SAN), as files."""

    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path, identities: Mapping[str, str]) -> dict[str, Certificates]:
    """One CA and a leaf per ``name -> SPIFFE id`` (EC P-256), written as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cluster.local")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    out = {}
    for serial, (name, spiffe_id) in enumerate(sorted(identities.items()), start=2):
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        paths = Certificates(ca_path, directory / f"{name}.pem", directory / f"{name}.key")
        paths.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        paths.key.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        out[name] = paths
    return out


def make_certificates(directory: Path, spiffe_id: str) -> Certificates:
    """A CA and one waypoint leaf certificate."""
    return make_pki(directory, {"waypoint": spiffe_id})["waypoint"]


def resources(updates: Iterable[Update], scope: str) -> dict[str, list[dict[str, Any]]]:
    """The JSON form of every resource in ``scope``, by type URL."""
    out: dict[str, list[dict[str, Any]]] = {}
    for update in updates:
        if update.scope != scope:
            continue
        out.setdefault(update.type_url, []).extend(
            MessageToDict(decode(update.type_url, resource.body), preserving_proto_field_name=True)
            for resource in update.upserts
        )
    return out


def _static_secret_refs(value: Any) -> Any:
    """Drop ``sds_config`` from references to the waypoint's two secrets."""
    if isinstance(value, dict):
        result = {key: _static_secret_refs(item) for key, item in value.items()}
        if result.get("name") in SECRET_NAMES and "sds_config" in result:
            del result["sds_config"]
        return result
    if isinstance(value, list):
        return [_static_secret_refs(item) for item in value]
    return value


def static_bootstrap(
    snapshot: Mapping[str, Sequence[dict[str, Any]]], certs: Certificates, node_id: str = NODE_ID
) -> dict[str, Any]:
    assignments = {cla["cluster_name"]: cla for cla in snapshot.get(type_urls.ENDPOINT, [])}
    clusters = []
    for cluster in snapshot.get(type_urls.CLUSTER, []):
        cluster = dict(cluster)
        if cluster.get("type") == "EDS":
            name = cluster["eds_cluster_config"].get("service_name", cluster["name"])
            if name not in assignments:
                raise AssertionError(f"EDS cluster {name} has no ClusterLoadAssignment")
            del cluster["eds_cluster_config"]
            cluster["type"] = "STATIC"
            cluster["load_assignment"] = assignments[name]
        clusters.append(_static_secret_refs(cluster))
    return {
        "node": {"id": node_id, "cluster": "waypoint.default"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.bootstrap."
                    "internal_listener.v3.InternalListener"
                },
            }
        ],
        "static_resources": {
            "secrets": [
                {
                    "name": "default",
                    "tls_certificate": {
                        "certificate_chain": {"filename": str(certs.cert)},
                        "private_key": {"filename": str(certs.key)},
                    },
                },
                {
                    "name": "ROOTCA",
                    "validation_context": {"trusted_ca": {"filename": str(certs.ca)}},
                },
            ],
            "listeners": [
                _static_secret_refs(listener) for listener in snapshot.get(type_urls.LISTENER, [])
            ],
            "clusters": clusters,
        },
        "layered_runtime": runtime_layers(),
    }


@dataclass(frozen=True)
class Validation:
    name: str
    returncode: int
    output: str


def validate(configs: Mapping[str, dict[str, Any]], directory: Path) -> list[Validation]:
    """``envoy --mode validate`` on each config, all at once (each run takes ~1 s)."""
    directory.mkdir(parents=True, exist_ok=True)
    running = []
    for name, config in configs.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(config, indent=1))
        running.append(
            (
                name,
                subprocess.Popen(
                    [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                ),
            )
        )
    results = []
    for name, process in running:
        output, _ = process.communicate(timeout=120)
        results.append(Validation(name, process.returncode, output))
    return results
