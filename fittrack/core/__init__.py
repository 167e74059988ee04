"""Fittrack's shared domain, service layer and adapters.

fittrack.core.domain    plain-Python rules: validation, aggregation, goals, reports
fittrack.core.ports     the small interfaces the service layer needs from storage
fittrack.core.services  use cases, one module per area
fittrack.core.adapters  implementations of the ports, chosen by configuration
"""
