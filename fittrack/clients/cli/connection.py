"""The connection to the server: stubs on one channel, the stored session and its transparent refresh."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from fittrack.clients.channel import QUICK_RECONNECT, ChannelError, Security, secure_channel, split_target
from fittrack.clients.cli.errors import EXIT_USAGE, CliError, NotLoggedIn
from fittrack.clients.cli.session import (
    DamagedSession,
    Metadata,
    Session,
    load_session,
    load_session_or_none,
    save_session,
    session_lock,
)
from fittrack.generated.v1 import (
    account_pb2,
    account_pb2_grpc,
    goal_pb2_grpc,
    metric_pb2_grpc,
    notification_pb2_grpc,
    report_pb2_grpc,
)

T = TypeVar("T")
DEFAULT_SERVER = "127.0.0.1:50051"
# Ending an old session is a courtesy to the server; it must not hold up the command the user asked for.
REVOKE_TIMEOUT = 3.0


class Client:
    """Stubs on one channel, plus the stored session with its transparent refresh."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._damaged: DamagedSession | None = None
        try:
            self.session = load_session()
        except DamagedSession as error:
            # Commands that need no session (register, login) still work, and login replaces the file.
            self.session, self._damaged = None, error
        self.address, source = next(
            (address, source)
            for address, source in (
                (args.server, "--server"),
                (os.environ.get("FITTRACK_SERVER"), "$FITTRACK_SERVER"),
                (self.session.server if self.session else None, "the session file"),
                (DEFAULT_SERVER, "the default"),
            )
            if address
        )
        self.timeout = args.timeout
        self.security = Security.from_args(args)
        if not self.security.secure and self.session and self.address == self.session.server:
            # Nothing said on the command line or in the environment: reach the server as at login.
            self.security = self.session.security
        self.channel = open_channel(self.address, self.security, source)
        self.accounts = account_pb2_grpc.AccountServiceStub(self.channel)
        self.goals = goal_pb2_grpc.GoalServiceStub(self.channel)
        self.metrics = metric_pb2_grpc.MetricServiceStub(self.channel)
        self.reports = report_pb2_grpc.ReportServiceStub(self.channel)
        self.notifications = notification_pb2_grpc.NotificationServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    @property
    def secure(self) -> bool:
        return split_target(self.address, self.security)[1].secure

    def require_session(self) -> Session:
        if self.session is None:
            raise self._damaged or NotLoggedIn()
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
        with session_lock():
            current = load_session_or_none()
            ours = current is not None and (current.server, current.username) == (stale.server, stale.username)
            if ours and current.refresh_token != stale.refresh_token:
                # Another fittrack process refreshed meanwhile: its tokens are the live ones (the one this
                # process holds has been used, and using it again would end the session).
                if not current.access_token_expired():
                    self.session = current
                    return current
                stale = current
            login = self.accounts.RefreshToken(
                account_pb2.RefreshTokenRequest(refresh_token=stale.refresh_token), timeout=self.timeout
            )
            self.session = Session.from_login(stale.server, stale.username, login, stale.security)
            if ours or current is None:
                save_session(self.session)  # never over another user's or server's session, logged in meanwhile
            return self.session


def open_channel(address: str, security: Security, source: str = "--server") -> grpc.Channel:
    """A channel to `address`; a bad address or TLS file is a usage error naming where the address came from."""
    try:
        split_target(address, security)
    except ChannelError as error:
        raise CliError(f"{source}: {error}", EXIT_USAGE) from None
    try:
        return secure_channel(address, security, QUICK_RECONNECT)
    except ChannelError as error:
        raise CliError(str(error), EXIT_USAGE) from None


def revoke(session: Session) -> bool:
    """End `session` on its own server, refreshing it first if its access token has expired.

    True when the server no longer holds it (ended now, or already over); False when the server could not
    be asked, in which case the session stays valid there until its refresh token expires.
    """
    try:
        channel = open_channel(session.server, session.security)
    except CliError:
        return False
    with channel:
        accounts = account_pb2_grpc.AccountServiceStub(channel)
        try:
            metadata = session.metadata
            if session.access_token_expired():
                refreshed = accounts.RefreshToken(
                    account_pb2.RefreshTokenRequest(refresh_token=session.refresh_token), timeout=REVOKE_TIMEOUT
                )
                metadata = [("authorization", f"Bearer {refreshed.access_token}")]
            accounts.Logout(account_pb2.LogoutRequest(), metadata=metadata, timeout=REVOKE_TIMEOUT)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return True
