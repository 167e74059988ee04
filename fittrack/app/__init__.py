"""The composition root: configuration, wiring, and one entrypoint per process."""
