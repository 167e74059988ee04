"""Commands about the account: register, log in and out (password or SSO), the password, the profile."""

from __future__ import annotations

import argparse
import webbrowser
from typing import TYPE_CHECKING

import grpc

from fittrack.clients import sso
from fittrack.clients.cli import vocabulary as words
from fittrack.clients.cli.connection import revoke
from fittrack.clients.cli.context import Context, local_time, zone_named
from fittrack.clients.cli.errors import CliError, NotLoggedIn, UsageError
from fittrack.clients.cli.passwords import add_password_stdin, new_password, read_passwords
from fittrack.clients.cli.profile import add_profile_options, profile_fields, system_time_zone
from fittrack.clients.cli.session import (
    Session,
    check_writable,
    end_forgotten,
    load_session,
    load_session_or_none,
    remember_forgotten,
    remove_session,
    save_session,
    session_path,
)
from fittrack.clients.cli.terminal import message_dict
from fittrack.generated.v1 import account_pb2

if TYPE_CHECKING:
    from fittrack.clients.cli.parser import Commands


def add_commands(commands: Commands) -> None:
    register = commands.command(None, "register", cmd_register, "create an account")
    register.add_argument("username")
    add_password_stdin(register)
    add_profile_options(register)
    register.epilog = "Without --time-zone, this machine's time zone is used when it can be told, else UTC."

    login = commands.command(None, "login", cmd_login, "log in and keep the session in the config directory")
    login.add_argument("username", nargs="?", help="the account to log in to with its password")
    add_password_stdin(login)
    login.add_argument("--sso", metavar="PROVIDER", help="log in through an OpenID Connect provider the server knows")
    login.add_argument("--no-browser", action="store_true", help="with --sso: only print the URL to open")
    login.add_argument(
        "--sso-timeout",
        type=words.seconds,
        default=300.0,
        metavar="SECONDS",
        help="with --sso: how long to wait (300)",
    )
    login.epilog = (
        "Logging in again, or as someone else, ends the previous session on its server. With --sso the CLI "
        "prints the provider's login URL (and opens it in a browser), listens on "
        "http://127.0.0.1:<free port>/callback for the redirect, and hands the code to the server."
    )

    logout = commands.command(None, "logout", cmd_logout, "end the session on the server and forget it here")
    logout.add_argument(
        "--local",
        action="store_true",
        help="only forget the session here, without asking the server (when it cannot be reached)",
    )

    commands.command(None, "status", cmd_status, "who is logged in where, and whether the session still works")

    password = commands.group("password", "manage the password")
    change = commands.command(password, "change", cmd_password_change, "set a new password (also when expired)")
    change.add_argument("--username", help="change it without a session, e.g. when the password has expired")
    add_password_stdin(change, "the current and then the new password")


# --- the commands ---


def cmd_register(ctx: Context, args: argparse.Namespace) -> None:
    client = ctx.client
    if args.time_zone is None:
        args.time_zone = system_time_zone()
    password = new_password(args, "Password")
    response = client.accounts.Register(
        account_pb2.RegisterRequest(username=args.username, password=password, profile=profile_fields(args)),
        timeout=client.timeout,
    )
    if args.json:
        ctx.terminal.json(response)
        return
    profile = response.profile
    ctx.terminal.line(f"Registered {profile.username} (time zone {profile.time_zone}).")
    ctx.terminal.line(f"Log in with: fittrack login {profile.username}")


def cmd_login(ctx: Context, args: argparse.Namespace) -> None:
    if args.sso:
        cmd_login_sso(ctx, args)
        return
    if not args.username:
        raise UsageError("name the account: `fittrack login USERNAME`, or `fittrack login --sso PROVIDER`")
    client = ctx.client
    check_writable()
    (password,) = read_passwords(args, ["Password"])
    try:
        login = client.accounts.Login(
            account_pb2.LoginRequest(username=args.username, password=password), timeout=client.timeout
        )
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
            # The server's advice names its RPC (ChangePassword); the hint names the command instead.
            raise CliError(
                (error.details() or "").split("; set a new one", 1)[0],
                hint=f"set a new password with `fittrack password change --username {args.username}`, then log in",
            ) from None
        raise
    username = args.username.strip().lower()
    path = keep(ctx, Session.from_login(client.address, username, login, client.security))
    if args.json:
        ctx.terminal.json({"username": username, "server": client.address, "session_file": str(path), **shown(login)})
        return
    ctx.terminal.line(f"Logged in as {username} on {client.address}.")
    # The server decides when to warn (14 days ahead) and says what to do.
    for warning in login.warnings:
        ctx.terminal.warning(warning)


def cmd_login_sso(ctx: Context, args: argparse.Namespace) -> None:
    """Log in through an OpenID Provider the server knows: print the URL, take the redirect on a loopback port."""
    if args.username:
        raise UsageError("give either USERNAME or --sso PROVIDER, not both")
    client = ctx.client
    check_writable()
    listing = client.accounts.ListSSOProviders(account_pb2.ListSSOProvidersRequest(), timeout=client.timeout)
    provider = next((p for p in listing.providers if p.name == args.sso), None)
    if provider is None:
        known = ", ".join(p.name for p in listing.providers) or "none"
        raise UsageError(f"the server has no SSO provider named {args.sso!r}; it has: {known}")
    try:
        endpoint = sso.discover(provider.issuer, client.timeout)["authorization_endpoint"]
        listener = sso.LoopbackListener()
        try:
            request = sso.authorization_request(
                endpoint, provider.client_id, list(provider.scopes), listener.redirect_uri
            )
            # stderr, so that stdout keeps only the result (JSON with --json).
            ctx.terminal.err.print(f"Open this URL in a browser to log in with {provider.name}:")
            ctx.terminal.err.print(request.url, soft_wrap=True)
            ctx.terminal.err.file.flush()
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
    path = keep(ctx, Session.from_login(client.address, profile.username, login, client.security))
    if args.json:
        ctx.terminal.json(
            {"username": profile.username, "server": client.address, "session_file": str(path), **shown(login)}
        )
        return
    ctx.terminal.line(f"Logged in as {profile.username} on {client.address} through {provider.name}.")


def keep(ctx: Context, session: Session) -> str:
    """Store a new session in place of the old one, and end the old one on its server.

    A session left behind would stay valid on the server, with its tokens nowhere but in a replaced file.
    """
    previous = load_session_or_none()
    try:
        path = save_session(session)
    except CliError:
        revoke(session)  # nobody could ever use or end it
        raise
    # A login got through: end the sessions forgotten while their server could not be reached.
    end_forgotten(revoke)
    if previous is not None and previous.refresh_token != session.refresh_token and not revoke(previous):
        remember_forgotten(previous)
        ctx.terminal.warning(
            f"could not end the previous session ({previous.username} on {previous.server}) on its server; "
            f"it stays valid there until {previous.refresh_token_expires_at[:10]}, "
            f"{_UNTIL_A_LOGIN.format(server=previous.server)}"
        )
    return str(path)


# What becomes of a session forgotten here while its server could not be reached (see session.end_forgotten).
_UNTIL_A_LOGIN = "or until the next `fittrack login` that reaches {server} ends it there"


def shown(login: account_pb2.LoginResponse) -> dict:
    """The login response without its tokens: those stay in the session file; scripts' logs are no place for them."""
    fields = message_dict(login)
    fields.pop("access_token", None)
    fields.pop("refresh_token", None)
    return fields


def cmd_logout(ctx: Context, args: argparse.Namespace) -> None:
    if args.local:
        session = load_session_or_none()
        if session is not None:
            remember_forgotten(session)  # so that a later login can still end it on its server
        remove_session()
        if args.json:
            ctx.terminal.json({})
        elif session is None:
            ctx.terminal.line("There was no session here.")
        else:
            ctx.terminal.line(f"Forgot the session of {session.username} on {session.server} here.")
            ctx.terminal.warning(
                f"it stays valid on the server until {session.refresh_token_expires_at[:10]}, "
                f"{_UNTIL_A_LOGIN.format(server=session.server)}"
            )
        return
    client = ctx.client
    session = client.require_session()
    try:
        client.unary(client.accounts.Logout, account_pb2.LogoutRequest())
        message = "Logged out."
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            # Keep the file: the session still works on the server, so the user can retry.
            raise CliError(
                f"cannot reach {client.address} to end the session; it is kept here so you can try again",
                hint=[
                    "start the server and run `fittrack logout` again",
                    "or forget it here only with `fittrack logout --local` "
                    f"(it then stays valid on the server until {session.refresh_token_expires_at[:10]}, "
                    f"{_UNTIL_A_LOGIN.format(server=session.server)})",
                ],
            ) from None
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        message = "The session had already ended on the server; removed it here too."
    remove_session()
    end_forgotten(revoke)  # the server answered: a good moment to end sessions forgotten earlier
    if args.json:
        ctx.terminal.json({})
    else:
        ctx.terminal.line(message)


def cmd_status(ctx: Context, args: argparse.Namespace) -> None:
    """Like `gh auth status`: the stored session, checked against its server."""
    session = load_session()
    if session is None:
        raise NotLoggedIn()
    client = ctx.client
    try:
        profile = client.unary(client.accounts.GetProfile, account_pb2.GetProfileRequest())
    except grpc.RpcError as error:
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            # What this machine knows still answers "who am I"; the error then says why it is unchecked.
            show_status(ctx, args, session, session.username, session.user_id, None)
        raise
    show_status(ctx, args, client.session or session, profile.username, profile.user_id, profile)  # refreshed?


def show_status(
    ctx: Context,
    args: argparse.Namespace,
    session: Session,
    username: str,
    user_id: str,
    profile: account_pb2.Profile | None,
) -> None:
    """The session as stored, and, with the `profile` the server answered, that it works there."""
    secure = ctx.client.secure
    if args.json:
        ctx.terminal.json(
            {
                "server": session.server,
                "tls": secure,
                "username": username,
                "user_id": user_id,
                "session_expires_at": session.refresh_token_expires_at,
                "session_file": str(session_path()),
                "checked": profile is not None,  # whether the server confirmed the session
            }
        )
        return
    if profile is None:
        ctx.terminal.line(
            f"Logged in to {session.server} as {username}, as stored here; the server could not be reached to check.",
            style="yellow",
        )
    else:
        ctx.terminal.line(f"Logged in to {session.server} as {username}.", style="green")
    rows = [
        ("connection", "TLS" if secure else "plaintext"),
        ("session until", session.refresh_token_expires_at[:10] + " (renewed as it is used)"),
    ]
    if profile is not None:
        expires = profile.password_expires_at
        zone = zone_named(profile.time_zone)
        rows.append(
            ("password expires", local_time(expires, zone)[:10] if profile.HasField("password_expires_at") else "never")
        )
    rows.append(("session file", str(session_path())))
    ctx.terminal.fields(rows)


def cmd_password_change(ctx: Context, args: argparse.Namespace) -> None:
    client = ctx.client
    if not args.username:
        client.require_session()  # before asking for passwords that could not be used
    if args.password_stdin:
        current, new = read_passwords(args, ["Current password", "New password"])
    else:
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
        ctx.terminal.json(response)
        return
    expiry = ""
    if response.HasField("password_expires_at"):
        expiry = f" It expires on {response.password_expires_at.ToDatetime():%Y-%m-%d}."
    ctx.terminal.line(f"Password changed.{expiry}{after}")
