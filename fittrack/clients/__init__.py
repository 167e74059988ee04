"""Clients of the Fittrack API: the `fittrack` command line and the wearable simulator."""

import os

# gRPC's C core logs connection failures (a TLS handshake against a plaintext server, say) straight to
# stderr, between our own messages. The clients explain those failures themselves (fittrack.clients.channel
# explain_unavailable), so silence the core unless the user asked for its logs. This must run before grpc
# is first imported, which is why it sits in the package's __init__.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
