"""The CA directory: first start creates, restarts reuse, plug-in files are honoured."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography.x509.oid import SignatureAlgorithmOID

from xds.security.ca import (
    CaError,
    CertificateAuthority,
    KeyAlgorithm,
    describe_key,
    key_to_pem,
    to_pem,
)
from xds.security.ca_files import CaDirectory, CaFileWatcher, default_ca_dir
from xds.security.identity import Identity

from .support import TD, ec_key, make_csr, rsa_key, verify_chain, write_plugin_ca

APP = Identity(TD, "default", "app")


def test_default_ca_dir_follows_xdg() -> None:
    assert default_ca_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/xds-ambient/ca")
    assert default_ca_dir({}) == Path.home() / ".local/state/xds-ambient/ca"


def test_first_start_creates_and_restart_keeps_the_root(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path / "ca")
    first, created = directory.load_or_create(organization=TD)
    assert created and first.self_signed
    again, created_again = CaDirectory(tmp_path / "ca").load_or_create(organization=TD)
    assert not created_again
    assert again.root_fingerprint == first.root_fingerprint
    assert again.root_pem == first.root_pem
    assert (tmp_path / "ca" / "root-cert.pem").read_text() == first.root_pem
    assert not (tmp_path / "ca" / "cert-chain.pem").exists()


def test_file_modes(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path / "ca")
    directory.load_or_create(organization=TD)
    assert stat.S_IMODE((tmp_path / "ca" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "ca" / "root-cert.pem").stat().st_mode) == 0o644
    assert not list((tmp_path / "ca").glob(".*.tmp"))


def test_create_refuses_to_replace_without_force(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path)
    first = directory.create(organization=TD)
    with pytest.raises(CaError, match="already holds a CA"):
        directory.create(organization=TD)
    second = directory.create(KeyAlgorithm.RSA_2048, organization=TD, force=True)
    assert second.root_fingerprint != first.root_fingerprint
    assert describe_key(directory.load().key) == "RSA 2048"


def test_a_partial_directory_is_an_error_not_a_new_root(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path)
    directory.create(organization=TD)
    (tmp_path / "ca-cert.pem").unlink()
    with pytest.raises(CaError, match=r"ca-cert\.pem: missing"):
        directory.load_or_create(organization=TD)
    assert not (tmp_path / "ca-cert.pem").exists()


def test_missing_root_file_falls_back_to_a_self_signed_ca_cert(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path)
    material = directory.create(organization=TD)
    (tmp_path / "root-cert.pem").unlink()
    assert directory.load().root_fingerprint == material.root_fingerprint


@pytest.mark.parametrize("damage", ["emptied", "removed"])
def test_serving_writes_back_the_root_clients_are_told_to_trust(
    tmp_path: Path, damage: str
) -> None:
    directory = CaDirectory(tmp_path)
    material = directory.create(organization=TD)
    root = tmp_path / "root-cert.pem"
    original = root.read_bytes()
    if damage == "emptied":
        root.write_bytes(b"")
    else:
        root.unlink()
    loaded, created = directory.load_or_create(organization=TD)
    assert not created and loaded.root_fingerprint == material.root_fingerprint
    assert root.read_bytes() == original


def test_a_plug_in_root_file_is_never_rewritten(tmp_path: Path) -> None:
    write_plugin_ca(tmp_path)
    before = (tmp_path / "root-cert.pem").read_bytes()
    CaDirectory(tmp_path).load_or_create(organization=TD)
    assert (tmp_path / "root-cert.pem").read_bytes() == before


def test_a_file_is_not_a_ca_directory(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(CaError, match="afile: not a directory"):
        CaDirectory(target).load_or_create(organization=TD)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ca-key.pem", b"garbage", r"ca-key\.pem: not a PEM private key"),
        ("ca-cert.pem", b"garbage", r"ca-cert\.pem: not PEM certificates"),
        ("ca-cert.pem", b"", r"ca-cert\.pem: empty"),
    ],
)
def test_broken_files_are_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    CaDirectory(tmp_path).create(organization=TD)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CaError, match=message):
        CaDirectory(tmp_path).load()


def test_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    CaDirectory(tmp_path).create(organization=TD)
    (tmp_path / "ca-key.pem").write_bytes(key_to_pem(ec_key()))
    with pytest.raises(CaError, match="does not match"):
        CaDirectory(tmp_path).load()


def test_plugin_ca_signs_as_the_intermediate(tmp_path: Path) -> None:
    plugin = write_plugin_ca(tmp_path / "cacerts")
    material, created = CaDirectory(plugin.directory).load_or_create(organization=TD)
    assert not created and not material.self_signed
    assert material.cert == plugin.intermediate
    assert material.intermediates == ()  # istio's cert-chain.pem = ca-cert + root: both skipped
    ca = CertificateAuthority(material)
    issued = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    assert issued.chain[1:] == (to_pem(plugin.intermediate), to_pem(plugin.root))
    assert issued.certificate.issuer == plugin.intermediate.subject
    result = verify_chain(tmp_path / "verify", issued.chain)
    assert result.returncode == 0, result.stdout + result.stderr


def test_plugin_ca_with_rsa_intermediate_and_no_cert_chain(tmp_path: Path) -> None:
    plugin = write_plugin_ca(tmp_path, key=rsa_key())
    (tmp_path / "cert-chain.pem").unlink()
    ca = CertificateAuthority(CaDirectory(tmp_path).load())
    issued = ca.sign_csr(make_csr(), APP, dt.timedelta(hours=1))
    assert issued.certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    result = verify_chain(tmp_path / "verify", issued.chain)
    assert result.returncode == 0, result.stdout + result.stderr
    assert issued.chain[-1] == to_pem(plugin.root)


def test_plugin_ca_without_root_file_is_refused(tmp_path: Path) -> None:
    write_plugin_ca(tmp_path)
    (tmp_path / "root-cert.pem").unlink()
    (tmp_path / "cert-chain.pem").unlink()
    with pytest.raises(CaError, match=r"root-cert\.pem: missing"):
        CaDirectory(tmp_path).load()


def test_watcher_reloads_on_change_and_ignores_broken_updates(tmp_path: Path) -> None:
    directory = CaDirectory(tmp_path)
    ca = CertificateAuthority(directory.create(organization=TD))
    watcher = CaFileWatcher(directory, ca)
    assert not watcher.poll()
    old = ca.root_fingerprint
    (tmp_path / "ca-cert.pem").write_text("broken")
    assert not watcher.poll()
    assert ca.root_fingerprint == old and ca.generation == 0
    replacement = directory.create(organization=TD, force=True)
    assert watcher.poll()
    assert ca.root_fingerprint == replacement.root_fingerprint != old
    assert ca.generation == 1
