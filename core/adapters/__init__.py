"""Implementations of core.ports; core.bootstrap picks them by configuration."""
