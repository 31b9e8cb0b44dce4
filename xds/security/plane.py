"""The security half of one control-plane process, assembled from options.

``MeshSecurity.open(options, pods=...)`` loads (or, on first start, creates)
the CA and builds everything the TLS port needs:

- ``server_credentials()`` for ``server.add_secure_port`` (rotating cert);
- ``authenticator`` for every call on that port (CreateCertificate and ADS);
- ``signer`` + ``authorizer`` for ``xds.serving.ca_service.CertificateService``;
- ``key_pairs`` for SDS secrets of waypoints;
- ``watch_ca()``, a task that reloads the CA when its files change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from xds.security.authn import (
    TOKEN_AUDIENCE,
    Authenticator,
    InsecureDevAuthenticator,
    TokensFileAuthenticator,
)
from xds.security.authz import DEFAULT_TRUSTED_NODE_ACCOUNTS, CertificateAuthorizer, PodLocator
from xds.security.ca import (
    DEFAULT_WORKLOAD_TTL,
    MAX_WORKLOAD_TTL,
    CertificateAuthority,
    KeyAlgorithm,
    SigningMaterial,
)
from xds.security.ca_files import CaDirectory, CaFileWatcher, default_ca_dir
from xds.security.identity import DEFAULT_TRUST_DOMAIN
from xds.security.keypairs import WorkloadKeyPairs
from xds.security.serving_tls import ServingCertificate, istiod_dns_names
from xds.security.signer import Signer
from xds.security.tokens import TOKENS_FILE, TokensFile

log = logging.getLogger("xds.ca")


@dataclass(frozen=True)
class SecurityOptions:
    ca_dir: Path | None = None
    """CA directory in cacerts layout; default ``$XDG_STATE_HOME/xds-ambient/ca``."""
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
    """Key type of a root created on first start (an existing CA is used as it is)."""
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    tokens_file: Path | None = None
    """Bearer tokens for file mode; default ``<ca_dir>/tokens``."""
    token_audiences: tuple[str, ...] = (TOKEN_AUDIENCE,)
    """Kubernetes mode: audiences a TokenReview accepts (istiod's ``TOKEN_AUDIENCES``)."""
    insecure_dev_auth: bool = False
    """Admit callers without valid credentials (development only; logs a warning)."""
    trusted_node_accounts: frozenset[str] = DEFAULT_TRUSTED_NODE_ACCOUNTS
    """``ns/sa`` of node agents allowed to request certificates for pods on their node."""
    system_namespace: str = "istio-system"
    """Namespace in istiod's DNS names (``istiod.<ns>.svc``) on the serving certificate."""
    revision: str = ""
    extra_hosts: tuple[str, ...] = ()
    """More DNS names or IPs for the serving certificate (like ``ISTIOD_CUSTOM_HOST``)."""
    default_cert_ttl: dt.timedelta = DEFAULT_WORKLOAD_TTL
    max_cert_ttl: dt.timedelta = MAX_WORKLOAD_TTL
    ca_reload_interval: float = 5.0
    """Seconds between checks of the CA files for changes."""

    @property
    def resolved_ca_dir(self) -> Path:
        return self.ca_dir or default_ca_dir()

    @property
    def resolved_tokens_file(self) -> Path:
        return self.tokens_file or self.resolved_ca_dir / TOKENS_FILE


@dataclass
class MeshSecurity:
    options: SecurityOptions
    ca: CertificateAuthority
    signer: Signer
    authenticator: Authenticator
    authorizer: CertificateAuthorizer
    serving: ServingCertificate
    key_pairs: WorkloadKeyPairs
    _watcher: CaFileWatcher | None = field(default=None, repr=False)

    @classmethod
    def open(cls, options: SecurityOptions, *, pods: PodLocator | None = None) -> MeshSecurity:
        """File mode: load or create the CA in its directory, tokens from the tokens file.
        Raises ``CaError``/``ValueError``.

        Blocking (file I/O, maybe RSA key generation): call before serving.
        """
        directory = CaDirectory(options.resolved_ca_dir)
        material, created = directory.load_or_create(
            options.key_algorithm, organization=options.trust_domain
        )
        log.info(
            "CA created" if created else "CA loaded",
            extra={
                "dir": directory.path,
                "root": material.root_fingerprint,
                "kind": "self-signed" if material.self_signed else "plug-in intermediate",
                "clients_trust": directory.root_cert_path,
            },
        )
        authenticator = TokensFileAuthenticator(
            TokensFile(options.resolved_tokens_file, options.trust_domain)
        )
        security = cls.assemble(options, material, authenticator, pods=pods)
        security._watcher = CaFileWatcher(directory, security.ca)
        return security

    @classmethod
    def assemble(
        cls,
        options: SecurityOptions,
        material: SigningMaterial,
        authenticator: Authenticator,
        *,
        pods: PodLocator | None = None,
    ) -> MeshSecurity:
        """Everything the TLS port needs, around CA material and an authenticator
        from wherever the mode keeps them (files, or the cluster)."""
        ca = CertificateAuthority(
            material, default_ttl=options.default_cert_ttl, max_ttl=options.max_cert_ttl
        )
        signer = Signer(ca)
        if options.insecure_dev_auth:
            authenticator = InsecureDevAuthenticator(authenticator)
        hosts = istiod_dns_names(options.system_namespace, options.revision, options.extra_hosts)
        return cls(
            options=options,
            ca=ca,
            signer=signer,
            authenticator=authenticator,
            authorizer=CertificateAuthorizer(
                options.trust_domain, options.trusted_node_accounts, pods
            ),
            serving=ServingCertificate(ca, hosts),
            key_pairs=WorkloadKeyPairs(signer, ttl=options.default_cert_ttl),
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS credentials for the secure port; the certificate rotates by itself."""
        return self.serving.server_credentials()

    async def watch_ca(self, on_change: Callable[[], None] | None = None) -> None:
        """Forever: reload the CA when its files change, then call ``on_change``.

        After a change, ``key_pairs.refresh_due()`` returns every SDS key pair
        (all chain to the old CA); the serving certificate follows on the next
        handshake by itself.
        """
        if self._watcher is None:  # the CA does not come from files
            return
        while True:
            await asyncio.sleep(self.options.ca_reload_interval)
            if self._watcher.poll() and on_change is not None:
                on_change()

    def close(self) -> None:
        self.signer.close()
