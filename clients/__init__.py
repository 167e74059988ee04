"""Clients of the Fittrack API: the `fittrack` command line and the wearable simulator."""
