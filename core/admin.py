"""`fittrack-admin`: operator commands against the configured profile's stores (same environment as the server).

    fittrack-admin dead-letters list [--json] [--limit N]
    fittrack-admin dead-letters replay (--all | NOTIFICATION_ID ...)

A dead letter is a notification whose push failed on every attempt, or was
refused for good (a 4xx other than 408 and 429). Replaying makes its push
pending again, due now, with its attempts reset: the running dispatcher
delivers it, with the same Idempotency-Key as before.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from core.config import Config, ConfigError
from core.domain.delivery import DeadLetter, DeliveryState
from core.domain.errors import Unavailable


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fittrack-admin", description="Fittrack operator commands.")
    commands = top.add_subparsers(dest="command", required=True)
    letters = commands.add_parser("dead-letters", help="notifications whose push failed for good")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list dead letters, most recent first")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    replay = actions.add_parser("replay", help="push dead letters again")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every dead letter")
    which.add_argument("ids", nargs="*", default=[], metavar="NOTIFICATION_ID", help="the dead letters to replay")
    return top


def describe(letter: DeadLetter) -> dict:
    notification = letter.notification
    return {
        "notification_id": notification.notification_id,
        "user_id": notification.user_id,
        "kind": notification.kind.name,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "failed_at": letter.failed_at.isoformat(),
        # "dead" until replayed; then "pending" or "delivered".
        "state": letter.state.value,
        "title": notification.title,
    }


def print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    rows = [("NOTIFICATION", "USER", "KIND", "ATTEMPTS", "FAILED AT", "STATE", "LAST ERROR")]
    for letter in letters:
        state = letter.state.value if letter.state is DeliveryState.DEAD else f"replayed ({letter.state.value})"
        rows.append(
            (
                letter.notification.notification_id,
                letter.notification.user_id,
                letter.notification.kind.name,
                str(letter.attempts),
                letter.failed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                state,
                letter.last_error,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False)) + "  " + row[-1])


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    from core.bootstrap import build_dead_letters

    try:
        config = Config.from_env()
        dead_letters, close = build_dead_letters(config)
    except ConfigError as error:
        print(f"fittrack-admin: {error}", file=sys.stderr)
        return 2
    except Unavailable as error:
        print(f"fittrack-admin: {error}", file=sys.stderr)
        return 1
    try:
        if arguments.action == "list":
            letters = dead_letters.list(arguments.limit)
            if arguments.json:
                for letter in letters:
                    print(json.dumps(describe(letter)))
            else:
                print_table(letters)
            return 0
        replayed = dead_letters.replay(None if arguments.all else arguments.ids)
        print(f"replayed {len(replayed)} dead letter{'s' if len(replayed) != 1 else ''}")
        for notification_id in replayed:
            print(notification_id)
        unknown = sorted(set(arguments.ids) - set(replayed))
        if unknown:
            print(
                f"fittrack-admin: not dead letters (unknown, or replayed already): {' '.join(unknown)}", file=sys.stderr
            )
            return 1
        return 0
    except Unavailable as error:
        print(f"fittrack-admin: {error}", file=sys.stderr)
        return 1
    finally:
        close()


if __name__ == "__main__":
    sys.exit(main())
