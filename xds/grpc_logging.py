"""gRPC core writes its own log lines (``E1204 12:00:00 ... add_port.cc] ...``) to stderr,
in its own format, for events we already report in ours (a port in use, a failed TLS
handshake from a plaintext client). Importing this module first makes it silent unless
the operator asks for it (``GRPC_VERBOSITY=info``, ``GRPC_TRACE=...``); gRPC reads the
setting when it loads, so this must run before ``grpc`` is imported."""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")
