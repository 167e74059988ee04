"""What every long-running Fittrack process does at start: read its command line and settings, set up its
logging, and (the workers) stop on SIGTERM or SIGINT.

Settings come from the environment only (the README's Configuration table), so the command line takes
nothing but --help; anything else is refused rather than ignored, and --help never starts the process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fittrack.app.config import Config, ConfigError
from fittrack.app.logs import handler_for
from fittrack.app.metrics_endpoint import CannotExport, instruments_for
from fittrack.app.tracing import Tracing, build_tracing
from fittrack.core.adapters.audit import AUDIT_LOGGER
from fittrack.core.adapters.instruments import Instruments
from fittrack.core.domain.errors import Unavailable

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


def configure_logging(config: Config) -> None:
    """The process's logging as the settings say: level, format (text or JSON lines on stderr), the audit log."""
    level = config.logging_level
    root = logging.getLogger()
    for handler in list(root.handlers):  # a second call (tests) replaces the first rather than doubling lines
        if getattr(handler, "fittrack", False):
            root.removeHandler(handler)
    handler = handler_for(config.log_format)
    handler.fittrack = True
    root.addHandler(handler)
    root.setLevel(level)
    for name in _NARRATORS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
    # Security events are kept whatever the level (FITTRACK_AUDIT_LOG=off writes none: process_observer).
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)


def production_config(program: str, summary: str) -> Config | None:
    """The production profile's settings, with logging set up; None (after saying why) when they are unusable."""
    command_line(program, summary)
    try:
        config = Config.from_env(profile="production")
    except ConfigError as error:
        print(f"{program}: {error}", file=sys.stderr)
        return None
    configure_logging(config)
    return config


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the process finishes what it holds and stops."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping


def close_all(closers: Sequence[Callable[[], None]]) -> None:
    """Close in the reverse of the order opened; one that fails does not keep the others open (it raises after)."""
    with contextlib.ExitStack() as stack:
        for close in closers:
            stack.callback(close)


@dataclass
class Worker:
    """What a worker's body gets: its settings, its telemetry, and the exit stack its parts are closed by."""

    config: Config
    instruments: Instruments
    tracing: Tracing
    closing: contextlib.ExitStack
    log: logging.Logger
    # Called once the parts are built: the event that says stop. In a process, SIGTERM or SIGINT sets it (before,
    # they end a process still waiting for its stores); a test running a body in a thread passes its own event.
    stop_signal: Callable[[], threading.Event] = stop_on_signals


def run_worker(program: str, summary: str, service: str, role: str, body: Callable[[Worker], None]) -> int:
    """A worker process from start to exit status: settings and logging, the metrics endpoint (started first, so
    the process shows while it waits for its stores), tracing, then `body`, which builds the parts, registers
    their closing on `worker.closing` and runs until stopped. On the way out everything closes in reverse: the
    parts, then tracing (exporting the spans of the last work), then the endpoint.

    Exit status: 2 for unusable settings, 1 for a dependency it cannot start without or an endpoint it cannot
    open, 0 after a stop.
    """
    config = production_config(program, summary)
    if config is None:
        return 2
    log = logging.getLogger(f"fittrack.workers.{role}")  # the worker's lines and its loop's read as one process's
    try:
        with contextlib.ExitStack() as closing:
            instruments, endpoint = instruments_for(config)
            if endpoint is not None:
                endpoint.start()
                closing.callback(endpoint.stop)
            tracing = build_tracing(config, service)
            closing.callback(tracing.shutdown)
            body(Worker(config, instruments, tracing, closing, log))
    except CannotExport as error:
        print(f"{program}: {error}", file=sys.stderr)
        return 1
    except Unavailable as error:  # a service it cannot start without, after waiting for it
        log.error("%s", error)
        return 1
    log.info("%s stopped", role)
    return 0
