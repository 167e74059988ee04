"""Implementations of fittrack.core.ports; fittrack.app.wiring picks them by configuration."""
