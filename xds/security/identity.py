"""SPIFFE identities as Istio uses them: ``spiffe://<trust domain>/ns/<ns>/sa/<sa>``.

Every certificate the CA issues carries exactly one of these as its URI SAN,
and every authenticated caller is one of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

SPIFFE_SCHEME: Final = "spiffe://"
DEFAULT_TRUST_DOMAIN: Final = "cluster.local"

# SPIFFE ID spec: trust domain is lowercase letters, digits, '.', '-', '_'.
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
# Kubernetes: a namespace is a DNS-1123 label, a service account name a
# DNS-1123 subdomain. Being strict here keeps odd bytes out of SANs, logs and
# the Envoy regexes that embed identities. (Always ``fullmatch``: ``$`` would
# accept a trailing newline.)
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SERVICE_ACCOUNT = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")


class InvalidIdentity(ValueError):
    """A string is not a well-formed Istio SPIFFE identity (the message says why)."""


@dataclass(frozen=True, slots=True, order=True)
class Identity:
    """A workload identity: a Kubernetes service account within a trust domain."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not _TRUST_DOMAIN.fullmatch(self.trust_domain):
            raise InvalidIdentity(f"invalid trust domain {_shorten(self.trust_domain)!r}")
        if not _NAMESPACE.fullmatch(self.namespace):
            raise InvalidIdentity(f"invalid namespace {_shorten(self.namespace)!r}")
        if not _SERVICE_ACCOUNT.fullmatch(self.service_account):
            raise InvalidIdentity(f"invalid service account {_shorten(self.service_account)!r}")

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """Parse ``spiffe://<td>/ns/<ns>/sa/<sa>``; anything else raises ``InvalidIdentity``."""
        if not uri.startswith(SPIFFE_SCHEME):
            raise InvalidIdentity(f"{_shorten(uri)!r} is not a spiffe:// URI")
        parts = uri[len(SPIFFE_SCHEME) :].split("/")
        if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
            raise InvalidIdentity(
                f"{_shorten(uri)!r} is not of the form spiffe://<trust domain>/ns/<ns>/sa/<sa>"
            )
        return cls(parts[0], parts[2], parts[4])

    @classmethod
    def from_account(cls, account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> Identity:
        """Parse the short ``<ns>/<sa>`` form used on the command line and in token files."""
        namespace, sep, service_account = account.partition("/")
        if not sep or "/" in service_account:
            raise InvalidIdentity(
                f"{_shorten(account)!r} is not of the form <namespace>/<service account>"
            )
        return cls(trust_domain, namespace, service_account)

    @property
    def account(self) -> str:
        """``<ns>/<sa>``: the identity without its trust domain."""
        return f"{self.namespace}/{self.service_account}"

    @property
    def uri(self) -> str:
        return f"{SPIFFE_SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def __str__(self) -> str:
        return self.uri


def _shorten(text: str, limit: int = 120) -> str:
    # Untrusted input ends up in error messages; keep those bounded.
    return text if len(text) <= limit else text[:limit] + "..."
