"""What every long-running Fittrack process does at start: read its command line, set up its logging.

Settings come from the environment only (the README's Configuration table), so the command line takes
nothing but --help; anything else is refused rather than ignored, and --help never starts the process.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

# kafka-python narrates every connection at INFO, APScheduler every run of the evaluator's tick (twice a
# minute): their warnings are what an operator needs.
_NARRATORS = ("kafka", "apscheduler")

_SETTINGS = (
    "Settings are read from the environment (FITTRACK_*), as the README's Configuration table lists; "
    "this command takes no arguments."
)


def command_line(program: str, summary: str, argv: Sequence[str] | None = None) -> None:
    """Print help and exit 0 for -h/--help; exit 2 with a usage line for anything else given."""
    parser = argparse.ArgumentParser(prog=program, description=summary, epilog=_SETTINGS)
    parser.parse_args(argv)


def configure_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in _NARRATORS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
