"""The gRPC server: one grpc.aio server hosting every Fittrack service, health and reflection."""
