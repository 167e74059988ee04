"""Fittrack's shared domain, service layer and adapters.

core.domain    plain-Python rules: validation, aggregation, goals, reports
core.ports     the small interfaces the service layer needs from storage
core.services  use cases, one module per area
core.adapters  implementations of the ports, chosen by configuration
"""
