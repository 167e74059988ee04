"""Building and running the server process: `python -m fittrack.app.server` (or `fittrack-server`)."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sqlite3
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fittrack.app.config import Config, ConfigError
from fittrack.app.metrics_endpoint import CannotExport, MetricsEndpoint, instruments_for
from fittrack.app.process import command_line, configure_logging
from fittrack.app.setting_values import parse_listen
from fittrack.app.stores import Dependency
from fittrack.app.tracing import SERVER, Tracing, build_tracing
from fittrack.app.wiring import App, build_app, utc_now
from fittrack.core.adapters.file_lock import HeldElsewhere
from fittrack.core.domain.errors import Unavailable
from fittrack.generated.v1 import (
    account_pb2,
    account_pb2_grpc,
    goal_pb2,
    goal_pb2_grpc,
    metric_pb2,
    metric_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
    report_pb2,
    report_pb2_grpc,
)
from fittrack.server.auth import AuthInterceptor
from fittrack.server.errors import ErrorInterceptor
from fittrack.server.metrics import MetricsInterceptor
from fittrack.server.readiness import ReadinessEndpoint
from fittrack.server.request_ids import RequestIdInterceptor
from fittrack.server.servicers.account import AccountServicer
from fittrack.server.servicers.goal import GoalServicer
from fittrack.server.servicers.metric import MetricServicer
from fittrack.server.servicers.notification import NotificationServicer
from fittrack.server.servicers.report import ReportServicer
from fittrack.server.streams import OpenStreams
from fittrack.server.tracing import TracingInterceptor

log = logging.getLogger("fittrack.server")

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (account_pb2, "AccountService"),
        (goal_pb2, "GoalService"),
        (metric_pb2, "MetricService"),
        (report_pb2, "ReportService"),
        (notification_pb2, "NotificationService"),
    )
)


DEPENDENCY_CHECK_SECONDS = 1.0


class CannotStart(Exception):
    """The server cannot start as configured; the message says why and what to do.

    exit_code: 2 for a setting to correct, 1 for the machine's state (an address another process holds).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Server:
    """The grpc.aio server together with what runs beside it in the process."""

    def __init__(
        self, grpc_server: grpc.aio.Server, app: App, health_servicer, metrics: MetricsEndpoint | None = None
    ) -> None:
        self.grpc_server = grpc_server
        self.app = app
        self.health = health_servicer
        self.metrics = metrics  # the Prometheus endpoint, when FITTRACK_METRICS_LISTEN is set
        self._monitor: asyncio.Task | None = None
        # What keeps the server from serving, as the readiness endpoint reports it: the same facts the
        # gRPC health service is told.
        self._unreachable: set[str] = set()
        self._state = "starting"
        self.readiness: ReadinessEndpoint | None = None
        if app.config.ready_listen:
            host, port = parse_listen(app.config.ready_listen, "FITTRACK_READY_LISTEN")
            self.readiness = ReadinessEndpoint(host, port, self.not_ready)

    def not_ready(self) -> list[str]:
        """Why the server should get no new calls; empty while every service is SERVING."""
        problems = [] if self._state == "serving" else [self._state]
        return problems + [f"{what} is unreachable" for what in sorted(self._unreachable)]

    async def start(self) -> None:
        if self.metrics is not None:
            try:
                self.metrics.start()
            except CannotExport as error:
                raise CannotStart(str(error)) from None
        if self.readiness is not None:
            try:
                await self.readiness.start()
            except OSError as error:
                if self.metrics is not None:
                    self.metrics.stop()
                raise CannotStart(
                    f"cannot listen on {self.app.config.ready_listen} for readiness checks: {error.strerror}; "
                    "set FITTRACK_READY_LISTEN to a free address"
                ) from None
        self.app.live.bind(asyncio.get_running_loop())
        for part in self.app.background:
            await part.start()
        await self.grpc_server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._state = "serving"
        if self.app.dependencies:
            self._monitor = asyncio.create_task(self._watch(self.app.dependencies), name="dependency-health")

    async def _watch(self, dependencies: list[Dependency]) -> None:
        """Report each service NOT_SERVING while something it needs is down, SERVING once all of it is back.

        The server's own entry ("") stays SERVING: the process is alive, and a balancer asking about a
        service learns whether that service can work.
        """
        up = {dependency.what: True for dependency in dependencies}
        serving = dict.fromkeys(SERVICE_NAMES, True)
        instruments = self.app.instruments
        while True:
            for dependency in dependencies:
                now_up = await asyncio.to_thread(dependency.check)
                instruments.dependency(dependency.what, now_up)
                if now_up != up[dependency.what]:
                    up[dependency.what] = now_up
                    (self._unreachable.discard if now_up else self._unreachable.add)(dependency.what)
                    log.warning("%s is %s", dependency.what, "back" if now_up else "unreachable")
            for service in SERVICE_NAMES:
                needed = [d for d in dependencies if not d.services or service in d.services]
                ok = all(up[d.what] for d in needed)
                if ok != serving[service]:
                    serving[service] = ok
                    status = (
                        health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
                    )
                    await self.health.set(service, status)
                    log.warning("%s %s", service, "serving" if ok else "not serving")
            await asyncio.sleep(DEPENDENCY_CHECK_SECONDS)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let running ones finish within the grace period, then stop the rest."""
        grace = self.app.config.shutdown_grace_seconds if grace is None else grace
        self._state = "shutting down"  # balancers stop sending new calls while the running ones finish
        await self.health.enter_graceful_shutdown()
        if self._monitor is not None:
            self._monitor.cancel()
        await self.grpc_server.stop(grace)
        for part in reversed(self.app.background):
            await part.stop()
        await asyncio.to_thread(self.app.close)
        if self.readiness is not None:
            await self.readiness.stop()
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.stop)

    async def wait_for_termination(self) -> None:
        await self.grpc_server.wait_for_termination()


def create_server(
    config: Config, clock: Callable[[], datetime] = utc_now, tracing: Tracing | None = None
) -> tuple[Server, int]:
    """A server bound to config.listen (port 0 picks a free one), not started yet.

    Call from inside the event loop that will run it. CannotStart when the
    address is taken or unusable (found before the database is opened), or
    the data directory cannot be used. `tracing` (tests: an in-memory exporter's) is made from the
    configuration when not given; the server shuts it down when it stops.
    """
    check_listenable(config)
    tracing = tracing or build_tracing(config, SERVER)
    instruments, metrics = instruments_for(config)
    try:
        app = build_app(config, clock, tracing=tracing, instruments=instruments)
    except HeldElsewhere as held:
        raise CannotStart(
            f"the database {config.database_path} is in use by another Fittrack server "
            f"(process {held.holder or 'unknown'}): stop it, or set FITTRACK_DATA_DIR (or FITTRACK_SQLITE_PATH) "
            "to another place"
        ) from None
    except (OSError, sqlite3.Error) as error:
        # Only the embedded profile keeps files: its database, and the token secret made on first start.
        if config.profile != "embedded":
            raise
        raise CannotStart(
            f"cannot keep data in {config.database_path.parent} ({error}); set FITTRACK_DATA_DIR "
            "(or FITTRACK_SQLITE_PATH) to a directory this user may create and write",
            exit_code=2,
        ) from None
    # bcrypt and SQLite block: they run on this pool, off the event loop.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="fittrack"))
    options = [
        # A larger message is refused by gRPC itself with RESOURCE_EXHAUSTED.
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Wearables hold streams for hours over links that die silently: pinging
        # them finds the dead ones, so their streams end and free their slots.
        ("grpc.keepalive_time_ms", int(config.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Clients may ping too (to keep NAT mappings alive), but not more than every 10 s.
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.http2.max_pings_without_data", 0),
        # grpcio 1.85 times out an unanswered keepalive ping by this setting, not by keepalive_timeout_ms alone.
        ("grpc.http2.ping_timeout_ms", int(config.keepalive_timeout_seconds * 1000)),
        ("grpc.max_concurrent_streams", 1024),
        # gRPC sets SO_REUSEPORT by default, so a second server on a taken port would bind too and
        # share its connections (and, embedded, its SQLite file) with the first: refuse instead.
        ("grpc.so_reuseport", 0),
    ]
    tracer = app.tracing.tracer("fittrack.server")
    # The request id before the error and auth interceptors: the lines they write carry it.
    interceptors = [RequestIdInterceptor(), ErrorInterceptor(), AuthInterceptor(app.accounts.authenticate)]
    if instruments.enabled:  # outside the error and auth interceptors: it counts the status the client gets
        interceptors.insert(0, MetricsInterceptor(instruments))
    if app.tracing.enabled:
        # First, outside the others: its span holds the whole call and sees the status the client gets.
        # Off, it is not there at all: a caller's traceparent is then not even read.
        interceptors.insert(0, TracingInterceptor(tracer))
    grpc_server = grpc.aio.server(interceptors=interceptors, options=options)
    # Off, the servicer starts no batch spans at all (None rather than a no-op tracer: not even a context switch).
    batch_tracer = tracer if app.tracing.enabled else None

    def today():
        return clock().date()

    account_pb2_grpc.add_AccountServiceServicer_to_server(
        AccountServicer(app.accounts, today, config.trusted_proxy_networks()), grpc_server
    )
    goal_pb2_grpc.add_GoalServiceServicer_to_server(GoalServicer(app.goals), grpc_server)
    streams = OpenStreams(config.max_streams_per_user, app.accounts.check_session, config.stream_recheck_seconds)
    metric_pb2_grpc.add_MetricServiceServicer_to_server(
        MetricServicer(app.metrics, streams, config.stream_window, batch_tracer, instruments), grpc_server
    )
    report_pb2_grpc.add_ReportServiceServicer_to_server(ReportServicer(app.reports), grpc_server)
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(
        NotificationServicer(app.notifications, app.live, streams),
        grpc_server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server)
    try:
        # grpcio answers a failed bind with 0 or with RuntimeError, depending on its version.
        port = _add_port(grpc_server, config)
    except RuntimeError:
        port = 0
    if port == 0:
        app.close()
        raise CannotStart(f"cannot listen on {config.listen}; set FITTRACK_LISTEN to an address of this machine")
    return Server(grpc_server, app, health_servicer, metrics), port


def check_listenable(config: Config) -> None:
    """CannotStart unless a socket can bind config.listen now, saying why in a person's words.

    gRPC says only "Failed to bind" (and logs a line of its internals), so the
    address is tried here first, as gRPC binds it (SO_REUSEADDR, no SO_REUSEPORT).
    """
    host, port = config.listen_address()
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise CannotStart(
            f"cannot listen on {config.listen}: {host} is not a name or address of this machine ({error.strerror}); "
            "set FITTRACK_LISTEN to one, such as 127.0.0.1:50051"
        ) from None
    failures: list[OSError] = []
    for family, kind, protocol, _, address in addresses:
        try:
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as error:
            failures.append(error)
    if any(error.errno == errno.EADDRINUSE for error in failures):
        raise CannotStart(
            f"{config.listen} is already in use: is another Fittrack server running? "
            "Stop it, or set FITTRACK_LISTEN to another address (port 0 picks a free one)"
        )
    # gRPC listens if any of the addresses a name resolves to works (localhost: ::1 may be missing).
    if failures and len(failures) == len(addresses):
        raise CannotStart(
            f"cannot listen on {config.listen}: {failures[0].strerror}; set FITTRACK_LISTEN to another address"
        )


def _add_port(grpc_server: grpc.aio.Server, config: Config) -> int:
    """Plaintext without a certificate (loopback development); TLS with one; mutual TLS with a client CA too."""
    files = config.tls_files()
    if files is None:
        return grpc_server.add_insecure_port(config.listen)
    certificate_chain, private_key, client_ca = files
    credentials = grpc.ssl_server_credentials(
        [(private_key, certificate_chain)],
        root_certificates=client_ca,
        # Internal services prove who they are with a certificate from this CA; without one the handshake fails.
        require_client_auth=client_ca is not None,
    )
    return grpc_server.add_secure_port(config.listen, credentials)


def transport_security(config: Config) -> str:
    if not config.tls_cert_file:
        return "plaintext"
    return "mutual TLS" if config.tls_client_ca_file else "TLS"


async def serve(config: Config) -> None:
    server, port = create_server(config)
    await server.start()
    host = config.listen.rsplit(":", 1)[0]
    log.info("fittrack %s profile serving on %s:%d (%s)", config.profile, host, port, transport_security(config))
    if server.readiness is not None:
        ready_host = config.ready_listen.rsplit(":", 1)[0]
        log.info("readiness checks: GET http://%s:%d/ready", ready_host, server.readiness.port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("shutting down: finishing calls in flight (up to %.0f s)", config.shutdown_grace_seconds)
    await server.stop()
    log.info("stopped")


def main() -> int:
    command_line("fittrack-server", "Serve Fittrack's gRPC API (the embedded profile runs its workers inside).")
    try:
        config = Config.from_env()
    except ConfigError as error:
        print(f"fittrack-server: {error}", file=sys.stderr)
        return 2
    sys.setswitchinterval(config.gil_switch_interval_ms / 1000)
    configure_logging(config)
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
