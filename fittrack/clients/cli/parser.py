"""The command line: global options, and each area's commands registered by its own module."""

from __future__ import annotations

import argparse
import difflib
from typing import Any, NoReturn

from fittrack.clients.channel import add_tls_options
from fittrack.clients.cli import accounts, goals, metrics, notifications, profile, readings, reports
from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.connection import DEFAULT_SERVER
from fittrack.clients.cli.errors import EXIT_USAGE, see_help

AREAS = (accounts, profile, goals, readings, metrics, reports, notifications)


class Parser(argparse.ArgumentParser):
    """argparse, with its complaints in the CLI's own form: an `error:` line, then where to read more.

    Options are never abbreviated: `--form` would otherwise be read as --format, not as a misspelt --from."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\nhint: {see_help(self.prog)}\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports an unknown option of a subcommand from the top parser, pointing at the top help;
        # the help that lists the right options is the subcommand's.
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            for name in (getattr(parsed, "command", None), getattr(parsed, "action", None)):
                parser = _subcommand(parser, name) or parser
            known = [option for action in parser._actions for option in action.option_strings]
            guesses = {
                extra: guess[0]
                for extra in extras
                if extra.startswith("--") and (guess := difflib.get_close_matches(extra.split("=")[0], known, n=1))
            }
            said = f"unrecognized arguments: {' '.join(extras)}"
            if len(guesses) == 1 and len(extras) == 1:
                said += f" (did you mean {next(iter(guesses.values()))}?)"
            elif guesses:
                said += f" (did you mean {', '.join(f'{guess} for {extra}' for extra, guess in guesses.items())}?)"
            self.exit(EXIT_USAGE, f"error: {said}\nhint: {see_help(parser.prog)}\n")
        return parsed


def _subcommand(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return None


class Commands:
    """Adds commands and groups of them; every command also takes the global options after its name."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        # The same options after the command name (`fittrack goals list --json`), without resetting them when absent.
        self._after = Parser(add_help=False)
        add_global_options(
            self._after, {"server": argparse.SUPPRESS, "json": argparse.SUPPRESS, "timeout": argparse.SUPPRESS}
        )
        add_tls_options(self._after, suppress_defaults=True)
        self._top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(self, group, name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = (group or self._top).add_parser(name, help=help_text, description=help_text, parents=[self._after])
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str):
        sub = self._top.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")


def add_global_options(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=defaults["server"],
        help=f"server address, grpcs://HOST:PORT for TLS (default: $FITTRACK_SERVER, else the logged-in server, "
        f"else {DEFAULT_SERVER})",
    )
    parser.add_argument(
        "--json", action="store_true", default=defaults["json"], help="print the responses as JSON, for scripts"
    )
    parser.add_argument(
        "--timeout",
        type=words.seconds,
        default=defaults["timeout"],
        metavar="SECONDS",
        help="deadline of each call, above 0 (default 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fittrack",
        description="Track steps, calories, distance, active minutes and heart rate on a Fittrack server.",
        epilog="Exit status: 0 success, 1 the server refused or the input is bad, 2 usage error or not logged in. "
        "Colour is used on terminals unless NO_COLOR is set.",
    )
    add_global_options(parser, {"server": None, "json": False, "timeout": 10.0})
    add_tls_options(parser)
    commands = Commands(parser)
    for area in AREAS:
        area.add_commands(commands)
    return parser
