"""Security: the mesh CA, who a caller is, and what a caller may obtain.

- ``identity``: SPIFFE identities (``spiffe://<td>/ns/<ns>/sa/<sa>``).
- ``ca``: X.509 issuing (leaves, serving certs, roots) and CSR validation.
- ``ca_files``: the CA on disk in istio's cacerts layout; reload on change.
- ``signer``: CA work moved off the event loop, batched.
- ``tokens`` / ``authn``: bearer credentials -> ``Caller``.
- ``authz``: which identity a caller may get a certificate for; xDS identity check.
- ``keypairs``: key + chain for identities we hold keys for (SDS to waypoints).
- ``serving_tls``: the TLS port's own certificate, rotated without restarts.
- ``plane``: all of the above assembled from ``SecurityOptions``.
- ``cli``: ``xds ca init|show``, ``xds token add`` and the ``serve`` flags.

Nothing here serves gRPC; ``xds.serving.ca_service`` is the CA endpoint.
"""
