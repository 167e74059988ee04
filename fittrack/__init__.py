"""Fittrack: a self-hosted fitness-tracking backend spoken to over gRPC.

Layers, each importing only those listed after it:

fittrack.app        composition root: configuration, wiring, one entrypoint per process
fittrack.server     the gRPC servicers, interceptors and stream bookkeeping
fittrack.workers    the persister, dispatcher and evaluator loops
fittrack.clients    the `fittrack` CLI, the wearable simulator and the load generator: they speak the
                    contract, and read the domain's facts about metrics
fittrack.core       domain rules, ports, use cases and the adapters that implement the ports
fittrack.generated  the contract's Python code, generated from protos/ (never edited)
"""
