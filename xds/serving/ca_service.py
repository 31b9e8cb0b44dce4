"""``istio.v1.auth.IstioCertificateService``: workload certificates over gRPC.

One unary call, ``CreateCertificate(csr, validity_duration, metadata)`` ->
``cert_chain = [leaf, *intermediates, root]``. The steps follow istiod
(``security/pkg/server/ca/server.go``): authenticate, decide the identity
(caller's own, or ``ImpersonatedIdentity`` for trusted node agents), check the
TTL and the CSR, sign, reply. The CPU-heavy part (CSR verification and
signing) runs on the ``Signer``'s thread pool so xDS streams sharing the event
loop are not stalled by a burst of CSRs.

Every refusal carries a status code and a message that says why:
UNAUTHENTICATED (no or bad credentials), PERMISSION_DENIED (authenticated but
not allowed), INVALID_ARGUMENT (TTL, CSR, metadata), FAILED_PRECONDITION (the
CA itself is expired).
"""

from __future__ import annotations

import logging
from typing import Final

import grpc
from google.protobuf import struct_pb2

from xds.metric_types import IstioCounter
from xds.proto.istio.v1.auth import ca_pb2
from xds.security.authn import AuthenticationError, Authenticator, Caller, Metadata
from xds.security.authz import CertificateAuthorizer, PermissionDeniedError
from xds.security.ca import CaExpiredError, CsrError, TtlError, parse_csr, requested_identity
from xds.security.identity import Identity
from xds.security.signer import Signer

log = logging.getLogger("xds.ca")

SERVICE_NAME: Final = "istio.v1.auth.IstioCertificateService"
METHOD: Final = f"/{SERVICE_NAME}/CreateCertificate"
IMPERSONATED_IDENTITY: Final = "ImpersonatedIdentity"

# istiod's names (security/pkg/server/ca/monitoring.go).
CSR_COUNT = IstioCounter("citadel_server_csr_count", "CSRs received.")
AUTHENTICATION_FAILURES = IstioCounter(
    "citadel_server_authentication_failure_count", "CSRs whose caller failed authentication."
)
CSR_PARSING_ERRORS = IstioCounter(
    "citadel_server_csr_parsing_err_count", "CSRs rejected as malformed."
)
SIGN_ERRORS = IstioCounter(
    "citadel_server_csr_sign_err_count", "CSRs that were not signed, by reason.", ["error"]
)
ISSUED = IstioCounter("citadel_server_success_cert_issuance_count", "Certificates issued.")


class Refused(Exception):
    """A request ends with a non-OK status; ``message`` goes back to the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CertificateService:
    """The servicer; add ``handler()`` to the TLS port's grpc.aio server."""

    def __init__(
        self,
        signer: Signer,
        authenticator: Authenticator,
        authorizer: CertificateAuthorizer,
    ) -> None:
        self._signer = signer
        self._authenticator = authenticator
        self._authorizer = authorizer

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "CreateCertificate": grpc.unary_unary_rpc_method_handler(
                    self.create_certificate,
                    request_deserializer=ca_pb2.IstioCertificateRequest.FromString,
                    response_serializer=ca_pb2.IstioCertificateResponse.SerializeToString,
                )
            },
        )

    async def create_certificate(
        self, request: ca_pb2.IstioCertificateRequest, context: grpc.aio.ServicerContext
    ) -> ca_pb2.IstioCertificateResponse:
        CSR_COUNT.inc()
        peer = context.peer()
        try:
            return await self._create(request, tuple(context.invocation_metadata() or ()), peer)
        except Refused as refusal:
            log.info(
                "CreateCertificate refused",
                extra={"peer": peer, "code": refusal.code.name, "reason": refusal.message},
            )
            await context.abort(refusal.code, refusal.message)
            raise  # abort raises; this keeps type checkers and readers certain
        except Exception:
            SIGN_ERRORS.inc("internal")
            log.exception("CreateCertificate failed", extra={"peer": peer})
            await context.abort(grpc.StatusCode.INTERNAL, "certificate signing failed")
            raise

    async def _create(
        self, request: ca_pb2.IstioCertificateRequest, metadata: Metadata, peer: str
    ) -> ca_pb2.IstioCertificateResponse:
        try:
            caller = await self._authenticator.authenticate(metadata, peer)
        except AuthenticationError as exc:
            AUTHENTICATION_FAILURES.inc()
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        try:
            ttl = self._signer.ca.resolve_ttl(request.validity_duration)
        except TtlError as exc:
            SIGN_ERRORS.inc("ttl")
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        identity = self._authorize(caller, request)
        try:
            issued = await self._signer.sign_csr(request.csr, identity, ttl)
        except CsrError as exc:
            CSR_PARSING_ERRORS.inc()
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except CaExpiredError as exc:
            SIGN_ERRORS.inc("ca_expired")
            raise Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        ISSUED.inc()
        if log.isEnabledFor(logging.DEBUG):  # skip formatting on the hot path
            log.debug(
                "certificate issued",
                extra={
                    "identity": identity,
                    "caller": caller,
                    "serial": f"{issued.certificate.serial_number:x}",
                    "not_after": issued.not_after.isoformat(),
                },
            )
        return ca_pb2.IstioCertificateResponse(cert_chain=issued.chain)

    def _authorize(self, caller: Caller, request: ca_pb2.IstioCertificateRequest) -> Identity:
        impersonated = _impersonated_identity(request.metadata)
        csr_identity = None
        if caller.anonymous:
            # Only insecure dev mode gets here: the CSR is then the sole source of
            # the identity, so it is parsed (and rejected if bad) up front.
            try:
                csr_identity = requested_identity(parse_csr(request.csr))
            except CsrError as exc:
                CSR_PARSING_ERRORS.inc()
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        try:
            return self._authorizer.identity_for(caller, impersonated, csr_identity)
        except PermissionDeniedError as exc:
            SIGN_ERRORS.inc("permission_denied")
            raise Refused(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None


def _impersonated_identity(metadata: struct_pb2.Struct) -> str | None:
    if IMPERSONATED_IDENTITY not in metadata.fields:
        return None
    value = metadata.fields[IMPERSONATED_IDENTITY]
    if value.WhichOneof("kind") != "string_value":
        raise Refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"metadata {IMPERSONATED_IDENTITY} must be a string",
        )
    return value.string_value or None
