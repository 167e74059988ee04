"""`fittrack profile show|update`, and the profile options `register` shares."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.context import Context, local_time, zone_named
from fittrack.clients.cli.errors import UsageError, see_help
from fittrack.generated.v1 import account_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands


def add_commands(commands: Commands) -> None:
    profile = commands.group("profile", "show or change the profile")
    commands.command(profile, "show", cmd_profile_show, "show the profile")
    add_profile_options(commands.command(profile, "update", cmd_profile_update, "change profile fields"))


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--display-name", help="name shown in the apps and on reports")
    parser.add_argument("--time-zone", help="IANA time zone, e.g. Europe/Paris; days and goals follow it")
    parser.add_argument("--height-cm", type=words.positive_number, help="height in centimetres")
    parser.add_argument("--weight-kg", type=words.positive_number, help="weight in kilograms")
    age = parser.add_mutually_exclusive_group()
    age.add_argument("--birth-date", type=words.iso_date, help="date of birth, YYYY-MM-DD")
    age.add_argument(
        "--age", type=words.whole_number(1, 150), help="age in years, for those who prefer not to give a date"
    )
    parser.add_argument("--sex", choices=words.SEXES, help="used for calorie estimates")


def system_time_zone() -> str | None:
    """The IANA name of this machine's time zone, when it can be told; the server defaults to UTC otherwise."""
    candidate = os.environ.get("TZ", "").lstrip(":")
    if not candidate:
        with contextlib.suppress(OSError):
            target = os.readlink("/etc/localtime")
            if "zoneinfo/" in target:
                candidate = target.split("zoneinfo/", 1)[1]
    if not candidate:
        return None
    try:
        ZoneInfo(candidate)
    except (ValueError, KeyError):
        return None
    return candidate


def profile_fields(args: argparse.Namespace) -> account_pb2.ProfileFields:
    fields = account_pb2.ProfileFields()
    for name in ("display_name", "height_cm", "weight_kg", "time_zone"):
        if getattr(args, name) is not None:
            setattr(fields, name, getattr(args, name))
    if args.birth_date is not None:
        fields.birth_date.CopyFrom(words.proto_date(args.birth_date))
    if args.age is not None:
        fields.age_years = args.age
    if args.sex is not None:
        fields.sex = words.SEXES[args.sex]
    return fields


def cmd_profile_show(ctx: Context, args: argparse.Namespace) -> None:
    profile = ctx.client.unary(ctx.client.accounts.GetProfile, account_pb2.GetProfileRequest())
    print_profile(ctx, profile, args.json)


def cmd_profile_update(ctx: Context, args: argparse.Namespace) -> None:
    fields = profile_fields(args)
    if not fields.ListFields():
        raise UsageError("nothing to update: give at least one option", hint=see_help("fittrack profile update"))
    request = account_pb2.UpdateProfileRequest(profile=fields)
    profile = ctx.client.unary(ctx.client.accounts.UpdateProfile, request)
    print_profile(ctx, profile, args.json)


def print_profile(ctx: Context, profile: account_pb2.Profile, as_json: bool) -> None:
    if as_json:
        ctx.terminal.json(profile)
        return
    # Times in the profile's own zone, the one its days and goals follow.
    zone = zone_named(profile.time_zone)
    birth = profile.birth_date
    born = words.day_of(birth).isoformat() if profile.HasField("birth_date") else ""
    ctx.terminal.fields(
        [
            ("username", profile.username),
            ("display name", profile.display_name),
            ("time zone", profile.time_zone),
            ("height", f"{words.number(profile.height_cm)} cm" if profile.height_cm else ""),
            ("weight", f"{words.number(profile.weight_kg)} kg" if profile.weight_kg else ""),
            ("birth date", born),
            ("age", str(profile.age_years) if profile.age_years else ""),
            ("sex", words.SEX_NAMES.get(profile.sex, "")),
            ("member since", local_time(profile.created_at, zone)),
            (
                "password expires",
                local_time(profile.password_expires_at, zone) if profile.HasField("password_expires_at") else "never",
            ),
            ("user id", profile.user_id),
        ]
    )
