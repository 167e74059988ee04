"""`fittrack`: the Fittrack API from a terminal, for people and for scripts.

Exit status: 0 on success, 1 when the server refuses a call, cannot be reached, or the input is bad, 2 for a
usage mistake or when a command needs a login first. With --json, stdout carries the response messages as
JSON (proto field names) and nothing else.

One module per area of work (accounts, goals, readings, metrics, reports, notifications), each adding its
own commands to the parser; terminal output goes through fittrack.clients.cli.terminal.
"""

from fittrack.clients.cli.main import main

__all__ = ["main"]
