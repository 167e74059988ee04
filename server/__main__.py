"""`python -m server` (or `fittrack-server`): run the server with settings from the environment."""

from __future__ import annotations

import asyncio
import sys

from core.config import Config, ConfigError
from core.domain.errors import Unavailable
from core.process import command_line, configure_logging
from server.app import CannotStart, serve


def main() -> int:
    command_line("fittrack-server", "Serve Fittrack's gRPC API (the embedded profile runs its workers inside).")
    try:
        config = Config.from_env()
    except ConfigError as error:
        print(f"fittrack-server: {error}", file=sys.stderr)
        return 2
    sys.setswitchinterval(config.gil_switch_interval_ms / 1000)
    configure_logging(config.logging_level)
    try:
        asyncio.run(serve(config))
    except Unavailable as error:  # a dependency it cannot start without, after waiting for it
        print(f"fittrack-server: {error}", file=sys.stderr)
        return 1
    except CannotStart as error:
        print(f"fittrack-server: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # Ctrl-C before the server took over the signal (it stops gracefully after)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
