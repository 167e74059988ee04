"""Background workers: the persister applies readings to the metric store.

The goal evaluator and the notification dispatcher join it with the goals work.
"""
