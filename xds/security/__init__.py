"""Security: the mesh CA, who a caller is, and what a caller may obtain.

- ``identity``: SPIFFE identities (``spiffe://<td>/ns/<ns>/sa/<sa>``).
- ``ca`` / ``ca_files``: X.509 issuing, and the CA's key material on disk.
- ``signer``: CA work moved off the event loop.
- ``authn`` / ``tokens``: bearer credentials -> ``Caller``.
- ``authz``: which identity a caller may get a certificate for.
- ``keypairs``: key + chain for identities we hold keys for (SDS to waypoints).
- ``serving_tls``: the TLS port's own certificate, rotated without restarts.

Nothing here does network I/O; the gRPC surface lives in ``xds.serving``.
"""
