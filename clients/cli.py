"""`fittrack`: the Fittrack API from a terminal, for people and for scripts.

Exit status: 0 on success, 1 when the server refuses a call or the input is
bad, 2 for a usage mistake or when a command needs a login first. With
--json, stdout carries the response messages as JSON (proto field names) and
nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import getpass
import json
import math
import os
import sys
import tempfile
import webbrowser
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.type import timeofday_pb2
from google.type.date_pb2 import Date

from clients import simulator, sso
from clients.channel import PLAINTEXT, ChannelError, Security, add_tls_options, secure_channel
from generated.fittrack.v1 import (
    account_pb2,
    account_pb2_grpc,
    common_pb2,
    goal_pb2,
    goal_pb2_grpc,
    metric_pb2,
    metric_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
)

try:
    import fcntl
except ImportError:  # Windows: concurrent refreshes are then not serialised
    fcntl = None

T = TypeVar("T")
Metadata = list[tuple[str, str]]

DEFAULT_SERVER = "127.0.0.1:50051"
EXIT_FAILED = 1
EXIT_USAGE = 2
# Refresh a little before the stored expiry, in case this machine's clock runs behind the server's.
CLOCK_SKEW = timedelta(seconds=60)
SPARK_BARS = "▁▂▃▄▅▆▇█"

METRICS = {
    "steps": common_pb2.METRIC_KIND_STEPS,
    "calories": common_pb2.METRIC_KIND_CALORIES_BURNED,
    "distance": common_pb2.METRIC_KIND_DISTANCE,
    "active-minutes": common_pb2.METRIC_KIND_ACTIVE_MINUTES,
    "heart-rate": common_pb2.METRIC_KIND_HEART_RATE,
}
METRIC_NAMES = {kind: name for name, kind in METRICS.items()}
GOAL_METRICS = [name for name in METRICS if name != "heart-rate"]
# CSV files name metrics with underscores (active_minutes); dashes are accepted too.
CSV_METRICS = {name.replace("-", "_"): kind for name, kind in METRICS.items()}
PER_MINUTE_LIMITS = {  # from the MetricKind documentation in common.proto
    common_pb2.METRIC_KIND_STEPS: (0, 1000),
    common_pb2.METRIC_KIND_CALORIES_BURNED: (0, 100),
    common_pb2.METRIC_KIND_DISTANCE: (0, 1500),
    common_pb2.METRIC_KIND_ACTIVE_MINUTES: (0, 1),
    common_pb2.METRIC_KIND_HEART_RATE: (20, 250),
}
PERIODS = {"daily": common_pb2.GOAL_PERIOD_DAILY, "weekly": common_pb2.GOAL_PERIOD_WEEKLY}
SEXES = {"female": account_pb2.SEX_FEMALE, "male": account_pb2.SEX_MALE, "other": account_pb2.SEX_OTHER}


class CliError(Exception):
    """A failure explained to the user; `hint` says what to do about it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, hint: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.hint = hint


class NotLoggedIn(CliError):
    def __init__(self, message: str = "you are not logged in") -> None:
        super().__init__(message, EXIT_USAGE, "run `fittrack login USERNAME` first")


# --- the session file ---


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "fittrack"


def session_path() -> Path:
    return config_dir() / "session.json"


@dataclass
class Session:
    server: str
    username: str
    user_id: str
    access_token: str
    access_token_expires_at: str
    refresh_token: str
    refresh_token_expires_at: str
    password_expires_at: str = ""
    # How the server was reached at login (TLS and the files to use), so later commands need not repeat it.
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_login(
        cls, server: str, username: str, login: account_pb2.LoginResponse, security: Security = PLAINTEXT
    ) -> Session:
        return cls(
            server=server,
            username=username,
            tls=security.tls,
            ca_file=_absolute(security.ca_file),
            cert_file=_absolute(security.cert_file),
            key_file=_absolute(security.key_file),
            user_id=login.user_id,
            access_token=login.access_token,
            access_token_expires_at=_iso(login.access_token_expires_at),
            refresh_token=login.refresh_token,
            refresh_token_expires_at=_iso(login.refresh_token_expires_at),
            password_expires_at=_iso(login.password_expires_at) if login.HasField("password_expires_at") else "",
        )

    def access_token_expired(self) -> bool:
        return datetime.now(UTC) + CLOCK_SKEW >= datetime.fromisoformat(self.access_token_expires_at)

    @property
    def metadata(self) -> Metadata:
        return [("authorization", f"Bearer {self.access_token}")]

    @property
    def security(self) -> Security:
        return Security(self.tls, self.ca_file, self.cert_file, self.key_file)


def _absolute(path: str) -> str:
    return str(Path(path).resolve()) if path else ""


def _iso(stamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


def load_session() -> Session | None:
    try:
        data = json.loads(session_path().read_text())
        return Session(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        raise CliError(
            f"the session file {session_path()} is damaged ({error})", EXIT_USAGE, "run `fittrack login` again"
        ) from None


def save_session(session: Session) -> Path:
    """Write the session so that only this user can read it, replacing the old one in one step."""
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    # mkstemp creates the file with mode 0600, so the tokens are never readable by others, not even briefly.
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".session-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(asdict(session), file, indent=2)
        os.replace(temporary, session_path())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return session_path()


def remove_session() -> None:
    with contextlib.suppress(FileNotFoundError):
        session_path().unlink()


@contextlib.contextmanager
def _session_lock() -> Iterator[None]:
    """Serialise refreshes across fittrack processes: refresh tokens work once, and the server
    ends the whole session when a used one comes back, so two scripts must not race with the same token."""
    if fcntl is None:
        yield
        return
    config_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(config_dir() / "session.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- talking to the server ---


class Client:
    """Stubs on one channel, plus the stored session with its transparent refresh."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.session = load_session()
        self.address = (
            args.server
            or os.environ.get("FITTRACK_SERVER")
            or (self.session.server if self.session else DEFAULT_SERVER)
        )
        self.timeout = args.timeout
        self.security = Security.from_args(args)
        if not self.security.secure and self.session and self.address == self.session.server:
            # Nothing said on the command line or in the environment: reach the server as at login.
            self.security = self.session.security
        try:
            self.channel = secure_channel(self.address, self.security)
        except ChannelError as error:
            raise CliError(str(error), EXIT_USAGE) from None
        self.accounts = account_pb2_grpc.AccountServiceStub(self.channel)
        self.goals = goal_pb2_grpc.GoalServiceStub(self.channel)
        self.metrics = metric_pb2_grpc.MetricServiceStub(self.channel)
        self.reports = report_pb2_grpc.ReportServiceStub(self.channel)
        self.notifications = notification_pb2_grpc.NotificationServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def require_session(self) -> Session:
        if self.session is None:
            raise NotLoggedIn()
        if self.session.server != self.address:
            # Never hand one server's tokens to another.
            raise CliError(
                f"you are logged in to {self.session.server}, not {self.address}",
                EXIT_USAGE,
                f"log in to {self.address} with `fittrack --server {self.address} login USERNAME`",
            )
        return self.session

    def call(self, invoke: Callable[[Metadata], T]) -> T:
        """Run `invoke` with the session's token; once the access token has expired, refresh and retry once.

        `invoke` must do the whole call, streams included: the server refuses
        an expired token before it sends anything, so a retry repeats nothing.
        """
        session = self.require_session()
        try:
            return invoke(session.metadata)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED or not session.access_token_expired():
                raise
        return invoke(self._refresh(session).metadata)

    def unary(self, method: Callable[..., T], request: Message) -> T:
        return self.call(lambda auth: method(request, metadata=auth, timeout=self.timeout))

    def _refresh(self, stale: Session) -> Session:
        with _session_lock():
            current = load_session()
            if current is not None and current.access_token != stale.access_token:
                self.session = current  # another fittrack process refreshed meanwhile
                return current
            login = self.accounts.RefreshToken(
                account_pb2.RefreshTokenRequest(refresh_token=stale.refresh_token), timeout=self.timeout
            )
            self.session = Session.from_login(stale.server, stale.username, login, stale.security)
            save_session(self.session)
            return self.session


# --- output ---


def message_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        # Counts are uint64 on the wire; scripts want numbers, not the strings proto3 JSON allows for them.
        unquote_int64_if_possible=True,
    )


def print_json(value: Message | dict | list) -> None:
    print(json.dumps(message_dict(value) if isinstance(value, Message) else value, indent=2, ensure_ascii=False))


def number(value: float) -> str:
    """Whole numbers as such, others to one decimal: 12,345 steps, 2,294.6 kcal."""
    return f"{value:,.1f}".removesuffix(".0")


def day_of(message: Date) -> date:
    return date(message.year, message.month, message.day)


def proto_date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)


def local_time(stamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def sparkline(values: Sequence[float | None], floor: float | None = None) -> str:
    """One bar per value, scaled from `floor` (default: the smallest value) to the largest; a blank for None."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low = min(present) if floor is None else floor
    span = max(present) - low
    bars = []
    for value in values:
        if value is None:
            bars.append(" ")
        elif span <= 0:
            bars.append(SPARK_BARS[-1] if value > 0 else SPARK_BARS[0])
        else:
            bars.append(SPARK_BARS[min(len(SPARK_BARS) - 1, int((value - low) / span * len(SPARK_BARS)))])
    return "".join(bars)


def describe_goal(goal: goal_pb2.Goal) -> str:
    period = "daily" if goal.period == common_pb2.GOAL_PERIOD_DAILY else "weekly"
    state = "" if goal.active else "  (inactive)"
    state += "" if goal.notify else "  (no notifications)"
    return f"{goal.goal_id}  {period} {METRIC_NAMES.get(goal.metric, '?')} {number(goal.target)}{state}"


# --- argument types ---


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-24") from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError("a batch holds 1 to 1000 readings")
    return value


def read_passwords(args: argparse.Namespace, prompts: Sequence[str]) -> list[str]:
    """One password per prompt: from the terminal without echo, or one line each from stdin.

    Passwords never come from the command line, where `ps` and shell history would show them.
    """
    if args.password_stdin:
        lines = [sys.stdin.readline().rstrip("\r\n") for _ in prompts]
        if not all(lines):
            raise CliError(f"--password-stdin expects {len(prompts)} non-empty line(s) on stdin")
        return lines
    try:
        return [getpass.getpass(f"{prompt}: ") for prompt in prompts]
    except EOFError:
        raise CliError("no password given", hint="type it at the prompt, or pipe it with --password-stdin") from None


def new_password(args: argparse.Namespace, prompt: str) -> str:
    """A new password, typed twice at a terminal so a typo cannot lock the user out."""
    (password,) = read_passwords(args, [prompt])
    if not args.password_stdin:
        (again,) = read_passwords(args, ["Repeat it"])
        if again != password:
            raise CliError("the two passwords differ; nothing was changed")
    return password


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
        fields.birth_date.CopyFrom(proto_date(args.birth_date))
    if args.age is not None:
        fields.age_years = args.age
    if args.sex is not None:
        fields.sex = SEXES[args.sex]
    return fields


# --- commands: accounts ---


def cmd_register(client: Client, args: argparse.Namespace) -> None:
    if args.time_zone is None:
        args.time_zone = system_time_zone()
    password = new_password(args, "Password")
    response = client.accounts.Register(
        account_pb2.RegisterRequest(username=args.username, password=password, profile=profile_fields(args)),
        timeout=client.timeout,
    )
    if args.json:
        print_json(response)
        return
    profile = response.profile
    print(f"Registered {profile.username} (time zone {profile.time_zone}).")
    print(f"Log in with: fittrack login {profile.username}")


def cmd_login(client: Client, args: argparse.Namespace) -> None:
    if args.sso:
        cmd_login_sso(client, args)
        return
    if not args.username:
        raise CliError("name the account: `fittrack login USERNAME`, or `fittrack login --sso PROVIDER`", EXIT_USAGE)
    (password,) = read_passwords(args, ["Password"])
    try:
        login = client.accounts.Login(
            account_pb2.LoginRequest(username=args.username, password=password), timeout=client.timeout
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
            raise CliError(
                f"{error.code().name}: {error.details()}",
                hint=f"set a new password with `fittrack password change --username {args.username}`, then log in",
            ) from None
        raise
    username = args.username.strip().lower()
    path = save_session(Session.from_login(client.address, username, login, client.security))
    if args.json:
        shown = message_dict(login)
        # The tokens stay in the session file; scripts' logs are no place for them.
        shown.pop("access_token", None)
        shown.pop("refresh_token", None)
        print_json({"username": username, "server": client.address, "session_file": str(path), **shown})
        return
    print(f"Logged in as {username} on {client.address}.")
    # The server decides when to warn (14 days ahead) and says what to do.
    for warning in login.warnings:
        print(warning, file=sys.stderr)


def cmd_login_sso(client: Client, args: argparse.Namespace) -> None:
    """Log in through an OpenID Provider the server knows: print the URL, take the redirect on a loopback port."""
    if args.username:
        raise CliError("give either USERNAME or --sso PROVIDER, not both", EXIT_USAGE)
    listing = client.accounts.ListSSOProviders(account_pb2.ListSSOProvidersRequest(), timeout=client.timeout)
    provider = next((p for p in listing.providers if p.name == args.sso), None)
    if provider is None:
        known = ", ".join(p.name for p in listing.providers) or "none"
        raise CliError(f"the server has no SSO provider named {args.sso!r}; it has: {known}", EXIT_USAGE)
    try:
        endpoint = sso.discover(provider.issuer, client.timeout)["authorization_endpoint"]
        listener = sso.LoopbackListener()
        try:
            scopes = list(provider.scopes)
            request = sso.authorization_request(endpoint, provider.client_id, scopes, listener.redirect_uri)
            # stderr, so that stdout keeps only the result (JSON with --json).
            print(f"Open this URL in a browser to log in with {provider.name}:", file=sys.stderr)
            print(request.url, file=sys.stderr, flush=True)
            if not args.no_browser:
                webbrowser.open(request.url)
            code = sso.code_from(listener.wait(args.sso_timeout), request.state)
        finally:
            listener.close()
    except sso.SsoError as error:
        raise CliError(str(error)) from None
    login = client.accounts.LoginSSO(
        account_pb2.LoginSSORequest(
            provider=provider.name,
            authorization_code=code,
            code_verifier=request.code_verifier,
            redirect_uri=request.redirect_uri,
            nonce=request.nonce,
        ),
        timeout=client.timeout,
    )
    auth = [("authorization", f"Bearer {login.access_token}")]
    profile = client.accounts.GetProfile(account_pb2.GetProfileRequest(), metadata=auth, timeout=client.timeout)
    path = save_session(Session.from_login(client.address, profile.username, login, client.security))
    if args.json:
        shown = message_dict(login)
        shown.pop("access_token", None)
        shown.pop("refresh_token", None)
        print_json({"username": profile.username, "server": client.address, "session_file": str(path), **shown})
        return
    print(f"Logged in as {profile.username} on {client.address} through {provider.name}.")


def cmd_logout(client: Client, args: argparse.Namespace) -> None:
    try:
        client.unary(client.accounts.Logout, account_pb2.LogoutRequest())
        message = "Logged out."
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise  # keep the file: the session still works on the server, so the user can retry
        message = "The session had already ended on the server; removed it here too."
    remove_session()
    if args.json:
        print_json({})
    else:
        print(message)


def cmd_password_change(client: Client, args: argparse.Namespace) -> None:
    if not args.username:
        client.require_session()  # before asking for passwords that could not be used
    (current,) = read_passwords(args, ["Current password"])
    new = new_password(args, "New password")
    if args.username:
        request = account_pb2.ChangePasswordRequest(username=args.username, current_password=current, new_password=new)
        response = client.accounts.ChangePassword(request, timeout=client.timeout)
        username = args.username.strip().lower()
        # Without a token every session of the account ends, a stored one included.
        if (
            client.session is not None
            and client.session.username == username
            and client.session.server == client.address
        ):
            remove_session()
        after = f" Log in again with `fittrack login {username}`."
    else:
        request = account_pb2.ChangePasswordRequest(current_password=current, new_password=new)
        response = client.unary(client.accounts.ChangePassword, request)
        after = " This session goes on; every other session of the account has ended."
    if args.json:
        print_json(response)
        return
    expiry = ""
    if response.HasField("password_expires_at"):
        expiry = f" It expires on {response.password_expires_at.ToDatetime():%Y-%m-%d}."
    print(f"Password changed.{expiry}{after}")


def cmd_profile_show(client: Client, args: argparse.Namespace) -> None:
    profile = client.unary(client.accounts.GetProfile, account_pb2.GetProfileRequest())
    print_profile(profile, args.json)


def cmd_profile_update(client: Client, args: argparse.Namespace) -> None:
    fields = profile_fields(args)
    if not fields.ListFields():
        raise CliError("nothing to update: give at least one option, see `fittrack profile update --help`", EXIT_USAGE)
    request = account_pb2.UpdateProfileRequest(profile=fields)
    profile = client.unary(client.accounts.UpdateProfile, request)
    print_profile(profile, args.json)


def print_profile(profile: account_pb2.Profile, as_json: bool) -> None:
    if as_json:
        print_json(profile)
        return
    sex = {value: name for name, value in SEXES.items()}.get(profile.sex, "")
    rows = [
        ("username", profile.username),
        ("display name", profile.display_name),
        ("time zone", profile.time_zone),
        ("height", f"{number(profile.height_cm)} cm" if profile.height_cm else ""),
        ("weight", f"{number(profile.weight_kg)} kg" if profile.weight_kg else ""),
        ("birth date", day_of(profile.birth_date).isoformat() if profile.HasField("birth_date") else ""),
        ("age", str(profile.age_years) if profile.age_years else ""),
        ("sex", sex),
        ("member since", local_time(profile.created_at)),
        (
            "password expires",
            local_time(profile.password_expires_at) if profile.HasField("password_expires_at") else "never",
        ),
        ("user id", profile.user_id),
    ]
    for label, value in rows:
        print(f"{label + ':':<18}{value or '-'}")


# --- commands: goals ---


def cmd_goals_add(client: Client, args: argparse.Namespace) -> None:
    request = goal_pb2.CreateGoalRequest(metric=METRICS[args.metric], period=PERIODS[args.period], target=args.target)
    if args.no_notify:
        request.notify = False
    goal = client.unary(client.goals.CreateGoal, request)
    if args.json:
        print_json(goal)
    else:
        print(f"Added goal {describe_goal(goal)}")


def cmd_goals_list(client: Client, args: argparse.Namespace) -> None:
    request = goal_pb2.ListGoalsRequest(include_inactive=args.all)
    response = client.unary(client.goals.ListGoals, request)
    if args.json:
        print_json(response)
        return
    if not response.goals:
        print("No goals yet; add one with `fittrack goals add`.")
    for goal in response.goals:
        print(describe_goal(goal))


def cmd_goals_update(client: Client, args: argparse.Namespace) -> None:
    if args.target is None and args.active is None and args.notify is None:
        raise CliError("nothing to update: give --target, --active and/or --notify", EXIT_USAGE)
    request = goal_pb2.UpdateGoalRequest(goal_id=args.goal_id)
    if args.target is not None:
        request.target = args.target
    if args.active is not None:
        request.active = args.active == "yes"
    if args.notify is not None:
        request.notify = args.notify == "yes"
    goal = client.unary(client.goals.UpdateGoal, request)
    if args.json:
        print_json(goal)
    else:
        print(f"Updated goal {describe_goal(goal)}")


def cmd_goals_delete(client: Client, args: argparse.Namespace) -> None:
    request = goal_pb2.DeleteGoalRequest(goal_id=args.goal_id)
    response = client.unary(client.goals.DeleteGoal, request)
    if args.json:
        print_json(response)
    else:
        print(f"Deleted goal {args.goal_id}.")


def cmd_goals_progress(client: Client, args: argparse.Namespace) -> None:
    request = goal_pb2.GetGoalProgressRequest(goal_id=args.goal_id)
    if args.date:
        request.date.CopyFrom(proto_date(args.date))
    progress = client.unary(client.goals.GetGoalProgress, request)
    if args.json:
        print_json(progress)
        return
    goal = progress.goal
    start, end = day_of(progress.period_start), day_of(progress.period_end)
    span = start.isoformat() if start == end else f"{start} to {end}"
    print(f"{describe_goal(goal)}")
    print(f"{span}: {number(progress.current)} of {number(goal.target)} ({progress.fraction:.0%})")
    if progress.met:
        print("Goal met.")
    else:
        pace = "ahead of" if progress.current >= progress.expected_by_now else "behind"
        print(f"{number(progress.remaining)} to go; {pace} pace ({number(progress.expected_by_now)} expected by now).")


# --- commands: readings and metrics ---


def parse_readings_csv(path: Path) -> list[simulator.SimulatedReading]:
    """Every row of a `time,metric,value` file, or an error naming the first bad line; nothing is sent before."""
    readings = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            for row in reader:
                if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                    continue
                if not readings and row[0].strip().lower() == "time":
                    continue  # the header
                readings.append(_csv_reading(path, reader.line_num, row))
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise CliError(f"{path} is not a readable CSV file ({error}); nothing was sent") from None
    if not readings:
        raise CliError(f"{path} holds no readings; expected rows of time,metric,value")
    return readings


def _csv_reading(path: Path, line: int, row: list[str]) -> simulator.SimulatedReading:
    def bad(reason: str) -> CliError:
        return CliError(f"{path}:{line}: {reason}; nothing was sent")

    if len(row) != 3:
        raise bad(f"expected 3 columns (time,metric,value), found {len(row)}")
    time_text, metric_text, value_text = (cell.strip() for cell in row)
    try:
        moment = datetime.fromisoformat(time_text)
    except ValueError:
        raise bad(f"time {time_text!r} is not ISO-8601, like 2026-11-24T08:15:00Z") from None
    if moment.tzinfo is None:
        raise bad(f"time {time_text!r} has no UTC offset; add Z or an offset such as +01:00")
    metric = CSV_METRICS.get(metric_text.lower().replace("-", "_"))
    if metric is None:
        raise bad(f"unknown metric {metric_text!r}; use one of {', '.join(CSV_METRICS)}")
    try:
        value = float(value_text)
    except ValueError:
        raise bad(f"value {value_text!r} is not a number") from None
    low, high = PER_MINUTE_LIMITS[metric]
    if not (math.isfinite(value) and low <= value <= high):
        raise bad(f"{metric_text} {value_text} is impossible in one minute; expected {low} to {high}")
    return metric, int(moment.timestamp()), value


def cmd_readings_push(client: Client, args: argparse.Namespace) -> None:
    readings = parse_readings_csv(args.file)
    batches = [
        metric_pb2.ReadingBatch(
            device_id=args.device_id,
            sequence=args.sequence_start + index if args.sequence_start else 0,
            readings=[simulator.reading_message(*r) for r in readings[offset : offset + args.batch_size]],
        )
        for index, offset in enumerate(range(0, len(readings), args.batch_size))
    ]

    def upload(auth: Metadata) -> metric_pb2.UploadSummary:
        requests = (metric_pb2.UploadReadingsRequest(batch=batch) for batch in batches)
        return client.metrics.UploadReadings(requests, metadata=auth, timeout=client.timeout)

    summary = client.call(upload)
    if args.json:
        print_json(summary)
        return
    print(
        f"Uploaded {summary.readings_accepted:,} readings in {summary.batches_accepted} batches "
        f"({summary.batches_duplicate} duplicate batches skipped), "
        f"{local_time(summary.first_reading_time)} to {local_time(summary.last_reading_time)}."
    )


def cmd_simulate_day(client: Client, args: argparse.Namespace) -> None:
    profile = client.unary(client.accounts.GetProfile, account_pb2.GetProfileRequest())
    zone = ZoneInfo(profile.time_zone)
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    day = args.date or today
    if day > today:
        raise CliError(f"{day} is in the future in {profile.time_zone}; a device can only report what happened")
    # By default the seed follows the device and day, so re-simulating a day resends the same readings,
    # which replace themselves instead of changing the totals.
    seed = args.seed if args.seed is not None else zlib.crc32(f"{args.device_id}/{day}".encode())
    readings = simulator.simulate_day(day, zone, seed, until=now if day == today else None)
    result = client.call(
        lambda auth: simulator.sync_readings(
            client.metrics, readings, args.device_id, auth, args.batch_size, timeout=client.timeout
        )
    )
    if args.json:
        print_json({"day": day.isoformat(), "readings": len(readings), **asdict(result)})
    else:
        print(
            f"Simulated {day} on {args.device_id}: {len(readings):,} readings, resuming after batch "
            f"{result.resumed_after}. Acks: {result.batches_accepted} accepted, {result.batches_duplicate} duplicate, "
            f"{result.batches_rejected} rejected ({result.readings_accepted:,} readings stored)."
        )
    for rejection in result.rejections:
        print(f"rejected {rejection}", file=sys.stderr)
    if result.batches_rejected:
        raise CliError(f"{result.batches_rejected} batch(es) were rejected")


def view_range(args: argparse.Namespace) -> dict[str, Any]:
    if args.from_date or args.to_date:
        if not (args.from_date and args.to_date):
            raise CliError("--from and --to go together", EXIT_USAGE)
        return {"dates": common_pb2.DateRange(start=proto_date(args.from_date), end=proto_date(args.to_date))}
    if args.week:
        return {"preset": common_pb2.RANGE_PRESET_LAST_7_DAYS}
    if args.month:
        return {"preset": common_pb2.RANGE_PRESET_LAST_30_DAYS}
    return {"preset": common_pb2.RANGE_PRESET_TODAY}


def cmd_metrics_view(client: Client, args: argparse.Namespace) -> None:
    request = metric_pb2.ViewMetricRequest(metric=METRICS[args.metric], **view_range(args))
    view = client.unary(client.metrics.ViewMetric, request)
    if args.json:
        print_json(view)
        return
    heart_rate = view.metric == common_pb2.METRIC_KIND_HEART_RATE
    print(f"{args.metric} ({view.unit}), {day_of(view.start)} to {day_of(view.end)}")
    print(f"{'date':<12}{'value':>12}" + (f"{'min':>8}{'max':>8}" if heart_rate else ""))
    for day in view.days:
        has_data = day.minutes_with_data > 0
        line = f"{day_of(day.date).isoformat():<12}{number(day.value) if has_data else '-':>12}"
        if heart_rate and has_data:
            line += f"{number(day.min):>8}{number(day.max):>8}"
        print(line)
    values = [day.value if day.minutes_with_data else None for day in view.days]
    if len(values) > 1:
        # Totals are read from zero; heart rate only makes sense between its own lowest and highest.
        print(sparkline(values, floor=None if heart_rate else 0))
    if heart_rate:
        print(f"min {number(view.min)} / avg {number(view.average)} / max {number(view.max)} {view.unit}", end="")
    else:
        print(f"total {number(view.total)} {view.unit}, average {number(view.average)} per day with data", end="")
    print(f" ({view.days_with_data} of {len(view.days)} days with data)")
    if len(view.sources) > 1:
        # Why the total is not the devices' sum: each minute counts once (see the merge policy).
        what = "average" if heart_rate else "own total"
        print(f"by source ({what}, before merging):")
        for source in view.sources:
            print(f"  {source.source:<24}{number(source.value):>12} {view.unit}  ({source.minutes_with_data} min)")


# --- commands: reports ---


def cmd_report_view(client: Client, args: argparse.Namespace) -> None:
    period = report_pb2.REPORT_PERIOD_MONTH if args.month else report_pb2.REPORT_PERIOD_WEEK
    request = report_pb2.ViewReportRequest(period=period)
    if args.date:
        request.anchor.CopyFrom(proto_date(args.date))
    report = client.unary(client.reports.ViewReport, request)
    if args.json:
        print_json(report)
        return
    name = "Monthly" if period == report_pb2.REPORT_PERIOD_MONTH else "Weekly"
    print(f"{name} report, {day_of(report.start)} to {day_of(report.end)}")
    for section in report.metrics:
        heart_rate = section.metric == common_pb2.METRIC_KIND_HEART_RATE
        unit = section.unit
        print()
        print(f"{METRIC_NAMES.get(section.metric, '?')} ({unit})")
        # A day without heart rate data reads 0 bpm, which is no measurement: leave it blank.
        values = [None if heart_rate and not day.value else day.value for day in section.days]
        print(f"  days          {sparkline(values, floor=None if heart_rate else 0)}")
        if not heart_rate:
            print(f"  total         {number(section.total)} {unit}")
        print(f"  average       {number(section.average)} {unit}{'' if heart_rate else ' per day with data'}")
        if section.HasField("best_day"):
            print(f"  best day      {day_of(section.best_day)}: {number(section.best_value)} {unit}")
        if section.daily_goal_target:
            print(
                f"  goal met      {section.days_goal_met} of {len(section.days)} days "
                f"(daily goal {number(section.daily_goal_target)}), streak {section.current_streak} days"
            )
        if section.weekly_goal_target:
            print(f"  weekly goal   {number(section.weekly_goal_target)} {unit}")
        if section.HasField("change_percent"):
            print(f"  vs previous   {section.change_percent:+.1f}%")
        else:
            print("  vs previous   no data in the previous period")


class Progress:
    """Download progress on stderr: a bar redrawn in place for a person watching a terminal, else one
    summary line at the end (for logs and scripts)."""

    WIDTH = 20

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0

    def _fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        fraction = self._fraction()
        filled = int(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction:4.0%} {done:,}/{self.total:,} bytes")
        self.stream.flush()

    def finish(self, what: str) -> None:
        if self.enabled:
            self.stream.write("\n")
        else:
            self.stream.write(f"{what}: received {self.done:,} of {self.total:,} bytes ({self._fraction():.0%})\n")
        self.stream.flush()


REPORT_FORMATS = {"csv": report_pb2.REPORT_FORMAT_CSV, "pdf": report_pb2.REPORT_FORMAT_PDF}


def report_format(args: argparse.Namespace) -> str:
    """--format, else the output file's extension when it names a format, else csv."""
    if args.format:
        return args.format
    extension = Path(args.output).suffix.lower().lstrip(".") if args.output and args.output != "-" else ""
    return extension if extension in REPORT_FORMATS else "csv"


def cmd_report_download(client: Client, args: argparse.Namespace) -> None:
    range_ = common_pb2.DateRange(start=proto_date(args.from_date), end=proto_date(args.to_date))
    file_format = report_format(args)
    request = report_pb2.DownloadReportRequest(range=range_, format=REPORT_FORMATS[file_format])

    def download(auth: Metadata) -> tuple[report_pb2.ReportFileInfo, Path | None, int]:
        responses = client.reports.DownloadReport(request, metadata=auth, timeout=client.timeout)
        first = next(responses, None)
        if first is None or first.WhichOneof("part") != "info":
            raise CliError("the server did not describe the file before sending it")
        info = first.info
        to_stdout = args.output == "-"
        # basename: the server suggests a name, it does not get to pick a directory.
        fallback = f"fittrack-report.{file_format}"
        target = None if to_stdout else Path(args.output or os.path.basename(info.filename) or fallback)
        received = 0
        progress = Progress(info.total_bytes)
        progress.update(0)
        with contextlib.ExitStack() as cleanup:
            if to_stdout:
                sink = sys.stdout.buffer
            else:
                # Written aside and renamed at the end, so a broken download never looks like a complete file.
                partial = target.with_name(target.name + ".part")
                sink = cleanup.enter_context(open(partial, "wb"))
                cleanup.callback(lambda: partial.unlink(missing_ok=True))
            for response in responses:
                sink.write(response.chunk)
                received += len(response.chunk)
                progress.update(received)
            progress.finish(str(target) if target is not None else info.filename or "download")
            if received != info.total_bytes:
                raise CliError(f"the download stopped at {received} of {info.total_bytes} bytes; try again")
            if target is not None:
                sink.close()
                os.replace(partial, target)
            else:
                sink.flush()
        return info, target, received

    info, target, received = client.call(download)
    if target is None:
        return
    if args.json:
        print_json({"file": str(target), "info": message_dict(info)})
    else:
        print(f"Saved {target} ({received:,} bytes, {info.content_type}).")


# --- commands: notifications ---


def print_notification(notification: notification_pb2.Notification) -> None:
    marker = " " if notification.read else "*"
    print(f"{marker} {local_time(notification.created_at)}  {notification.title}")
    print(f"    {notification.body}")
    print(f"    id {notification.notification_id}")


def cmd_notifications_list(client: Client, args: argparse.Namespace) -> None:
    collected: list[notification_pb2.Notification] = []
    request = notification_pb2.ListNotificationsRequest(unread_only=args.unread, page_size=min(args.limit, 100))
    while True:
        page = client.unary(client.notifications.ListNotifications, request)
        collected.extend(page.notifications)
        if not page.next_page_token or len(collected) >= args.limit:
            break
        request.page_token = page.next_page_token
    collected = collected[: args.limit]
    if args.json:
        print_json({"notifications": [message_dict(n) for n in collected], "unread_count": page.unread_count})
        return
    if not collected:
        print("No unread notifications." if args.unread else "No notifications.")
    for notification in collected:
        print_notification(notification)
    print(f"{page.unread_count} unread.")


def cmd_notifications_read(client: Client, args: argparse.Namespace) -> None:
    request = notification_pb2.MarkReadRequest(notification_ids=args.ids)
    response = client.unary(client.notifications.MarkRead, request)
    if args.json:
        print_json(response)
    else:
        print(f"Marked {response.marked} notification(s) as read.")


def cmd_notifications_preferences(client: Client, args: argparse.Namespace) -> None:
    if args.enable is None and args.quiet is None and not args.no_quiet:
        preferences = client.unary(
            client.notifications.GetNotificationPreferences, notification_pb2.GetNotificationPreferencesRequest()
        )
    else:
        request = notification_pb2.UpdateNotificationPreferencesRequest(clear_quiet_hours=args.no_quiet)
        if args.enable is not None:
            request.enabled = args.enable
        if args.quiet is not None:
            start, end = args.quiet
            request.quiet_start.CopyFrom(timeofday_pb2.TimeOfDay(hours=start.hour, minutes=start.minute))
            request.quiet_end.CopyFrom(timeofday_pb2.TimeOfDay(hours=end.hour, minutes=end.minute))
        preferences = client.unary(client.notifications.UpdateNotificationPreferences, request)
    if args.json:
        print_json(preferences)
        return
    print(f"Notifications: {'on' if preferences.enabled else 'off'}")
    if preferences.HasField("quiet_start"):
        start, end = preferences.quiet_start, preferences.quiet_end
        print(f"Quiet hours: {start.hours:02d}:{start.minutes:02d} to {end.hours:02d}:{end.minutes:02d} (local time)")
    else:
        print("Quiet hours: none")


def quiet_hours(text: str) -> tuple[time, time]:
    start, separator, end = text.partition("-")
    try:
        if not separator:
            raise ValueError
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range of local times such as 22:00-07:00") from None


def cmd_notifications_watch(client: Client, args: argparse.Namespace) -> None:
    def watch(auth: Metadata) -> None:
        # No deadline: the stream is meant to stay open until the user stops it.
        stream = client.notifications.SubscribeNotifications(
            notification_pb2.SubscribeNotificationsRequest(), metadata=auth
        )
        try:
            # The server sends its headers once the subscription is in place: from then on nothing is missed.
            stream.initial_metadata()
            if stream.is_active():
                print("Watching for notifications; press Ctrl-C to stop.", file=sys.stderr, flush=True)
            for notification in stream:
                if args.json:
                    print(json.dumps(message_dict(notification), ensure_ascii=False), flush=True)
                else:
                    print_notification(notification)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            stream.cancel()

    client.call(watch)


# --- the parser ---


def add_password_stdin(parser: argparse.ArgumentParser, lines: str = "the password") -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help=f"read {lines} from stdin, one per line, instead of prompting"
    )


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--display-name", help="name shown in the apps")
    parser.add_argument("--time-zone", help="IANA time zone, e.g. Europe/Paris; days and goals follow it")
    parser.add_argument("--height-cm", type=float, help="height in centimetres")
    parser.add_argument("--weight-kg", type=float, help="weight in kilograms")
    age = parser.add_mutually_exclusive_group()
    age.add_argument("--birth-date", type=iso_date, help="date of birth, YYYY-MM-DD")
    age.add_argument("--age", type=int, help="age in years, for those who prefer not to give a birth date")
    parser.add_argument("--sex", choices=SEXES, help="used for calorie estimates")


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
        type=float,
        default=defaults["timeout"],
        metavar="SECONDS",
        help="deadline of each call (default 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fittrack",
        description="Track steps, calories, distance, active minutes and heart rate on a Fittrack server.",
        epilog="Exit status: 0 success, 1 the server refused or the input is bad, 2 usage error or not logged in.",
    )
    add_global_options(parser, {"server": None, "json": False, "timeout": 10.0})
    add_tls_options(parser)
    # The same options after the command name (`fittrack goals list --json`), without resetting them when absent.
    after_command = argparse.ArgumentParser(add_help=False)
    add_global_options(
        after_command, {"server": argparse.SUPPRESS, "json": argparse.SUPPRESS, "timeout": argparse.SUPPRESS}
    )
    add_tls_options(after_command, suppress_defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group, name: str, handler, help_text: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text, description=help_text, parents=[after_command])
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    register = command(commands, "register", cmd_register, "create an account")
    register.add_argument("username")
    add_password_stdin(register)
    add_profile_options(register)
    register.epilog = "Without --time-zone, this machine's time zone is used when it can be told, else UTC."

    login = command(commands, "login", cmd_login, "log in and keep the session in the config directory")
    login.add_argument("username", nargs="?", help="the account to log in to with its password")
    add_password_stdin(login)
    login.add_argument("--sso", metavar="PROVIDER", help="log in through an OpenID Connect provider the server knows")
    login.add_argument("--no-browser", action="store_true", help="with --sso: only print the URL to open")
    login.add_argument(
        "--sso-timeout", type=float, default=300.0, metavar="SECONDS", help="with --sso: how long to wait (300)"
    )
    login.epilog = (
        "With --sso the CLI prints the provider's login URL (and opens it in a browser), listens on "
        "http://127.0.0.1:<free port>/callback for the redirect, and hands the code to the server."
    )

    command(commands, "logout", cmd_logout, "end the session on the server and forget it here")

    password = group("password", "manage the password")
    change = command(password, "change", cmd_password_change, "set a new password (also when it has expired)")
    change.add_argument("--username", help="change it without a session, e.g. when the password has expired")
    add_password_stdin(change, "the current and then the new password")

    profile = group("profile", "show or change the profile")
    command(profile, "show", cmd_profile_show, "show the profile")
    add_profile_options(command(profile, "update", cmd_profile_update, "change profile fields"))

    goals = group("goals", "daily and weekly targets")
    add = command(goals, "add", cmd_goals_add, "add a goal")
    add.add_argument("--metric", choices=GOAL_METRICS, required=True)
    add.add_argument("--period", choices=PERIODS, required=True)
    add.add_argument("--target", type=float, required=True, help="amount to reach per period")
    add.add_argument("--no-notify", action="store_true", help="no nudges or 'goal reached' for this goal")
    command(goals, "list", cmd_goals_list, "list goals").add_argument(
        "--all", action="store_true", help="include inactive goals"
    )
    update = command(goals, "update", cmd_goals_update, "change a goal's target or turn it on or off")
    update.add_argument("goal_id", metavar="GOAL_ID")
    update.add_argument("--target", type=float)
    update.add_argument("--active", choices=("yes", "no"))
    update.add_argument("--notify", choices=("yes", "no"), help="notifications about this goal")
    command(goals, "delete", cmd_goals_delete, "delete a goal").add_argument("goal_id", metavar="GOAL_ID")
    progress = command(goals, "progress", cmd_goals_progress, "progress towards a goal")
    progress.add_argument("goal_id", metavar="GOAL_ID")
    progress.add_argument("--date", type=iso_date, help="a day in the period to measure (default today)")

    readings = group("readings", "send device readings")
    push = command(readings, "push", cmd_readings_push, "upload a CSV file of time,metric,value rows")
    push.add_argument("file", type=Path, metavar="FILE.csv")
    push.add_argument("--device-id", default="", help="device the readings come from (default: manual entry)")
    push.add_argument("--batch-size", type=batch_size, default=500, help="readings per batch, up to 1000")
    push.add_argument(
        "--sequence-start",
        type=positive_int,
        default=0,
        metavar="N",
        help="number the batches N, N+1, ... so the server skips ones it already has (default: unnumbered)",
    )
    push.epilog = (
        "metric is one of steps, calories, distance, active_minutes, heart_rate; time is ISO-8601 with "
        "an offset, e.g. 2026-11-24T08:15:00Z. A bad row stops the push before anything is sent. "
        "Large files may need a larger --timeout."
    )

    simulate = group("simulate", "simulate a wearable")
    day = command(simulate, "day", cmd_simulate_day, "sync one simulated day of a wearable")
    day.add_argument("--device-id", default="fittrack-simulator", help="simulated device (default fittrack-simulator)")
    day.add_argument("--date", type=iso_date, help="local day to simulate (default: today, up to now)")
    day.add_argument("--seed", type=int, help="random seed (default: derived from the device and the day)")
    day.add_argument("--batch-size", type=batch_size, default=simulator.DEFAULT_BATCH_SIZE, help=argparse.SUPPRESS)

    metrics = group("metrics", "view metrics")
    view = command(metrics, "view", cmd_metrics_view, "one metric, day by day")
    view.add_argument("metric", choices=METRICS, metavar="METRIC", help=", ".join(METRICS))
    span = view.add_mutually_exclusive_group()
    span.add_argument("--today", action="store_true", help="today (the default)")
    span.add_argument("--week", action="store_true", help="the last 7 days")
    span.add_argument("--month", action="store_true", help="the last 30 days")
    span.add_argument("--from", dest="from_date", type=iso_date, help="first day, with --to (at most 31 days)")
    view.add_argument("--to", dest="to_date", type=iso_date, help="last day, with --from")

    reports = group("report", "week and month reports, downloads")
    report_view = command(reports, "view", cmd_report_view, "a week or month against the goals")
    length = report_view.add_mutually_exclusive_group()
    length.add_argument("--week", action="store_true", help="a week (the default)")
    length.add_argument("--month", action="store_true", help="a calendar month")
    report_view.add_argument("--date", type=iso_date, help="a day in the period (default: the last full one)")
    download = command(reports, "download", cmd_report_download, "download daily values as CSV or a PDF with charts")
    download.add_argument("--from", dest="from_date", type=iso_date, required=True)
    download.add_argument("--to", dest="to_date", type=iso_date, required=True)
    download.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it, - for stdout (default: the server's name)"
    )
    download.add_argument(
        "--format",
        choices=sorted(REPORT_FORMATS),
        help="csv (daily values) or pdf (summary and charts); default: the output's extension, else csv",
    )

    notifications = group("notifications", "read notifications")
    listing = command(notifications, "list", cmd_notifications_list, "list notifications, newest first")
    listing.add_argument("--unread", action="store_true", help="unread ones only")
    listing.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    command(notifications, "read", cmd_notifications_read, "mark notifications as read").add_argument(
        "ids", nargs="+", metavar="ID"
    )
    command(notifications, "watch", cmd_notifications_watch, "print new notifications as they come, until Ctrl-C")
    preferences = command(
        notifications, "preferences", cmd_notifications_preferences, "show or change notification preferences"
    )
    switch = preferences.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="enable", action="store_const", const=True, help="turn notifications on")
    switch.add_argument("--off", dest="enable", action="store_const", const=False, help="turn notifications off")
    quiet = preferences.add_mutually_exclusive_group()
    quiet.add_argument("--quiet", type=quiet_hours, metavar="HH:MM-HH:MM", help="quiet hours in local time")
    quiet.add_argument("--no-quiet", action="store_true", help="remove the quiet hours")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client = None
    try:
        client = Client(args)
        args.handler(client, args)
        return 0
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            address = client.address if client else args.server
            print(f"hint: is the Fittrack server running at {address}? Start one with `make run`.", file=sys.stderr)
            print("hint: a server that serves TLS needs --tls or --ca-file (or $FITTRACK_CA_FILE).", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) has gone; point stdout at nothing so the exit-time flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
