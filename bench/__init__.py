"""Benchmarks: each prints one JSON line with its figures and an anchor measured in the same run."""
