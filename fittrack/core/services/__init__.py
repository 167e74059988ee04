"""Use cases: each function takes plain values, calls the domain and the ports, returns domain objects."""
