"""Domain rules. Only the standard library and each other: no grpc, no storage drivers."""
