"""Passwords from the person at the terminal (never echoed, typed twice when new) or from stdin for scripts.

Passwords never come from the command line, where `ps` and shell history would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.errors import CliError


def add_password_stdin(parser: argparse.ArgumentParser, lines: str = "the password") -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help=f"read {lines} from stdin, one per line, instead of prompting"
    )


def read_passwords(args: argparse.Namespace, prompts: Sequence[str]) -> list[str]:
    """One password per prompt: from the terminal without echo, or one line each from stdin.

    Passwords never come from the command line, where `ps` and shell history would show them.
    """
    if args.password_stdin:
        lines = [sys.stdin.readline().rstrip("\r\n") for _ in prompts]
        if not all(lines):
            count = words.plural(len(prompts), "non-empty line")
            raise CliError(f"--password-stdin expects {count} on stdin")
        return lines
    if not _has_terminal():
        # getpass would fall back to stdin with a GetPassWarning and its source line: say what to do instead.
        raise CliError("there is no terminal to ask for the password on", hint="pipe it with --password-stdin")
    try:
        return [getpass.getpass(f"{prompt}: ") for prompt in prompts]
    except EOFError:
        raise CliError("no password given", hint="type it at the prompt, or pipe it with --password-stdin") from None


def _has_terminal() -> bool:
    try:
        with open("/dev/tty"):
            return True
    except OSError:
        return sys.stdin.isatty()


def new_password(args: argparse.Namespace, prompt: str) -> str:
    """A new password, typed twice at a terminal so a typo cannot lock the user out."""
    (password,) = read_passwords(args, [prompt])
    if not args.password_stdin:
        (again,) = read_passwords(args, ["Repeat it"])
        if again != password:
            raise CliError("the two passwords differ; nothing was changed")
    return password
