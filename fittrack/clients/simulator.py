"""The `fittrack-simulator` command: register fresh users and run a fleet of their simulated wearables
(fittrack/clients/fleet.py), each syncing realistic days (activity.py) the way a wearable does (sync.py): a
window of batches in flight, random dropped connections, resuming from the welcome. At the end it checks through
ViewMetric that every user's steps per day are exactly what was simulated: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import grpc

from fittrack.clients.channel import (
    ChannelError,
    add_tls_options,
)
from fittrack.clients.command_line import (
    A_CHANCE,
    ANY_WHOLE_NUMBER,
    AT_LEAST_ONE,
    EXIT_FAILED,
    EXIT_USAGE,
    CommandParser,
    check_server,
    days_problem,
    hours_range,
    iso_day,
    number,
    report_failures,
    report_rpc_error,
    whole_number,
)
from fittrack.clients.fleet import FleetPlan, run_fleet
from fittrack.clients.sync import (
    SyncBehaviour,
)
from fittrack.clients.sync_call import DEFAULT_BATCH_SIZE


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(
        prog="fittrack-simulator",
        description="Register fresh users and run a fleet of their wearables, each syncing simulated days over "
        "SyncReadings with random disconnects; then check every user's steps per day through ViewMetric.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("FITTRACK_SERVER") or "127.0.0.1:50051",
        help="HOST:PORT of the server (default: $FITTRACK_SERVER or 127.0.0.1:50051)",
    )
    add_tls_options(parser)
    parser.add_argument("--devices", type=AT_LEAST_ONE, default=3, help="devices to simulate (default 3)")
    parser.add_argument(
        "--devices-per-user",
        type=AT_LEAST_ONE,
        default=1,
        help="devices of one user: a watch, then phones that count steps in the user's pocket (default 1)",
    )
    parser.add_argument("--time-zone", default="UTC", help="IANA time zone of the users (default UTC)")
    parser.add_argument(
        "--date", type=iso_day, help="last local day to simulate, YYYY-MM-DD (default: today, up to now)"
    )
    parser.add_argument(
        "--days",
        type=whole_number("1 to 31 (one ViewMetric call checks them)", lambda value: 1 <= value <= 31),
        default=1,
        help="days to simulate, ending with --date (default 1, at most 31)",
    )
    parser.add_argument(
        "--hours", type=hours_range, default=(0, 24), help="local hours of each day to sync, FROM-TO (default 0-24)"
    )
    parser.add_argument(
        "--seed", type=ANY_WHOLE_NUMBER, help="seed of the readings and the disconnects (default: random)"
    )
    parser.add_argument(
        "--batch-size",
        type=whole_number("1 to 1000", lambda value: 1 <= value <= 1000),
        default=DEFAULT_BATCH_SIZE,
        help="readings per batch (default 60)",
    )
    parser.add_argument(
        "--window", type=AT_LEAST_ONE, default=4, help="batches a device sends before awaiting acks (default 4)"
    )
    parser.add_argument(
        "--disconnect-rate",
        type=A_CHANCE,
        default=0.05,
        help="chance, per batch, that the device drops the connection after sending it (default 0.05)",
    )
    parser.add_argument(
        "--max-backoff",
        type=number("seconds above 0", lambda value: value > 0),
        default=2.0,
        help="longest wait before reconnecting, in seconds (default 2)",
    )
    parser.add_argument(
        "--ack-timeout",
        type=number("seconds above 0", lambda value: value > 0),
        default=30.0,
        help="how long a device waits for an ack before it counts the connection as broken (default 30 s)",
    )
    parser.add_argument(
        "--give-up-after",
        type=whole_number("0 or more", lambda value: value >= 0),
        default=8,
        help="failed connections in a row, without an ack, after which a device gives up (default 8)",
    )
    parser.add_argument("--no-verify", action="store_true", help="do not check the users' steps through ViewMetric")
    parser.add_argument(
        "--verify-timeout",
        type=number("seconds, 0 or more", lambda value: value >= 0),
        default=60.0,
        help="how long the steps may take to show up (default 60 s)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    try:
        zone = ZoneInfo(args.time_zone)
    except (ValueError, KeyError):
        parser.error(f"--time-zone: unknown time zone {args.time_zone!r}; give an IANA name, like Europe/Paris")
    problem = days_problem(args.date or datetime.now(zone).date(), args.days, zone)
    if problem:
        parser.error(f"--date: {problem}" if args.date else problem)
    security = check_server(parser, args)
    plan = FleetPlan(
        devices=args.devices,
        devices_per_user=args.devices_per_user,
        time_zone=args.time_zone,
        last_day=args.date,
        days=args.days,
        hours=args.hours,
        batch_size=args.batch_size,
        behaviour=SyncBehaviour(
            window=args.window,
            disconnect_rate=args.disconnect_rate,
            max_backoff=args.max_backoff,
            ack_timeout=args.ack_timeout,
            max_failures=args.give_up_after,
        ),
        seed=args.seed if args.seed is not None else random.randrange(2**31),
        verify=not args.no_verify,
        verify_timeout=args.verify_timeout,
    )
    try:
        report = asyncio.run(run_fleet(args.server, plan, security))
    except grpc.RpcError as error:
        return report_rpc_error(error, args.server, security)
    except ChannelError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    print(json.dumps(report.figures()) if args.json else report.summary())
    if report.failures:
        report_failures(report.failures)
        if any(device.error for device in report.devices) and report.figures()["server_errors"].get("UNAVAILABLE"):
            print(f"hint: the devices lost the server: is it still running at {args.server}?", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
