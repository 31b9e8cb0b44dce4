"""The TLS side of HBONE: SDS references and the common TLS context (waypoint.md §8).

Secrets come over the same ADS stream (``sds_config: {ads: {}}``) because a
stock Envoy has no pilot-agent serving them on a Unix socket. Both directions
are TLS 1.3 only with ALPN ``h2`` and SPIFFE URI SAN checks against the trust
domain; the caller's exact identity is authorised later, per request, by RBAC.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from xds.model.networking import ClientTls
from xds.translate.secrets import credential_resource_names
from xds.translate.waypoint import names
from xds.translate.waypoint.protos import boolean, exact, prefix, typed


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """An ``SdsSecretConfig`` fetched over ADS.

    No ``initial_fetch_timeout`` override: the server always answers for
    ``default`` and ``ROOTCA``, and if it ever cannot, Envoy's default (15 s)
    lets the listener come up and fail handshakes visibly instead of warming
    forever.
    """
    return secret_pb2.SdsSecretConfig(
        name=name,
        sds_config=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        ),
    )


def spiffe_san_matchers(
    trust_domain: str, *, extra_prefixes: tuple[str, ...] = ()
) -> list[common_pb2.SubjectAltNameMatcher]:
    """URI SAN prefix matchers (ORed by Envoy): any identity of the trust domain."""
    prefixes = (f"spiffe://{trust_domain}/", *extra_prefixes)
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=prefix(value)
        )
        for value in prefixes
    ]


def hbone_tls_context(
    trust_domain: str, *, extra_san_prefixes: tuple[str, ...] = ()
) -> tls_pb2.CommonTlsContext:
    """``CommonTlsContext`` shared by connect_terminate and connect_originate."""
    return tls_pb2.CommonTlsContext(
        tls_params=common_pb2.TlsParameters(
            tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
        ),
        alpn_protocols=["h2"],
        tls_certificate_sds_secret_configs=[sds_secret(names.SECRET_WORKLOAD)],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=spiffe_san_matchers(
                    trust_domain, extra_prefixes=extra_san_prefixes
                )
            ),
            validation_context_sds_secret_config=sds_secret(names.SECRET_ROOT_CA),
        ),
    )


def downstream_hbone_socket(trust_domain: str) -> base_pb2.TransportSocket:
    """The server side of HBONE on 15008: client certificates are required."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=hbone_tls_context(trust_domain), require_client_certificate=boolean(True)
    )
    return _transport_socket(context)


def upstream_hbone_socket(trust_domain: str, waypoint_namespace: str) -> base_pb2.TransportSocket:
    """The client side of HBONE toward destination ztunnels.

    Like istiod, the second prefix (the waypoint's own namespace) is redundant
    with the first; it is kept so the SAN list reads the same as istiod's.
    """
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=hbone_tls_context(
            trust_domain,
            extra_san_prefixes=(f"spiffe://{trust_domain}/ns/{waypoint_namespace}/sa/",),
        )
    )
    return _transport_socket(context)


def originated_tls_socket(tls: ClientTls, host: str) -> base_pb2.TransportSocket:
    """DestinationRule ``tls`` SIMPLE/MUTUAL: TLS to an external endpoint, as istiod: SNI
    the rule's or the host, the chain verified against ``caCertificates`` (and the SANs,
    when listed) unless ``insecureSkipVerify``; for MUTUAL, the client certificate.
    With ``credentialName`` both come over SDS instead (``kubernetes://<name>`` and
    ``kubernetes://<name>-cacert``), and the files are not used."""
    if tls.credential_name is not None:
        context = tls_pb2.UpstreamTlsContext(
            common_tls_context=_credential_context(tls, tls.credential_name),
            sni=tls.sni or host,
        )
        return _transport_socket(context)
    common = tls_pb2.CommonTlsContext()
    if tls.ca_certificates and not tls.insecure_skip_verify:
        validation = common.validation_context
        validation.trusted_ca.filename = tls.ca_certificates
        for name in tls.subject_alt_names:
            validation.match_typed_subject_alt_names.add(
                san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=exact(name)
            )
    if tls.mutual and tls.client_certificate and tls.private_key:
        certificate = common.tls_certificates.add()
        certificate.certificate_chain.filename = tls.client_certificate
        certificate.private_key.filename = tls.private_key
    context = tls_pb2.UpstreamTlsContext(common_tls_context=common, sni=tls.sni or host)
    return _transport_socket(context)


def _credential_context(tls: ClientTls, credential_name: str) -> tls_pb2.CommonTlsContext:
    """istiod's ApplyCustomSDSToClientCommonTLSContext."""
    certificate, ca_bundle = credential_resource_names(credential_name)
    common = tls_pb2.CommonTlsContext()
    if tls.mutual:
        common.tls_certificate_sds_secret_configs.append(sds_secret(certificate))
    if not tls.insecure_skip_verify:
        combined = common.combined_validation_context
        # Required by Envoy even when empty (no SANs to match).
        combined.default_validation_context.SetInParent()
        combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ca_bundle))
        for name in tls.subject_alt_names:
            combined.default_validation_context.match_typed_subject_alt_names.add(
                san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=exact(name)
            )
    return common


def _transport_socket(
    context: tls_pb2.DownstreamTlsContext | tls_pb2.UpstreamTlsContext,
) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name="tls", typed_config=typed(context))
