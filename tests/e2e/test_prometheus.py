"""The embedded server's Prometheus endpoint (FITTRACK_METRICS_LISTEN), scraped over HTTP: every figure agrees
with the calls, readings and streams the test sent. The production profile's are in tests/integration."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from fittrack.app.config import Config
from fittrack.generated.v1 import account_pb2, common_pb2, goal_pb2, metric_pb2, notification_pb2
from tests.production import ROOT
from tests.prometheus import free_port, scrape
from tests.support import (
    RunningServer,
    Stubs,
    User,
    batch,
    eventually,
    local_midnight,
    minute_start,
    reading,
    register_and_login,
    rpc_error,
    server_settings,
    upload,
)
from tests.webhook import Webhook

STEPS = common_pb2.METRIC_KIND_STEPS
Ack = metric_pb2.BatchAck
ACCOUNTS = "fittrack.v1.AccountService"
METRICS = "fittrack.v1.MetricService"
NOTIFICATIONS = "fittrack.v1.NotificationService"


@pytest.fixture
def measured(tmp_path, clock):
    """An embedded server of its own (so every count starts at zero) exporting on a free port."""
    running = RunningServer(Config(**server_settings(tmp_path, metrics_listen="127.0.0.1:0")), clock)
    running.metrics_port = running.server.metrics.port
    yield running
    running.stop()


@pytest.fixture
def measured_stubs(measured):
    stubs = Stubs.connect(measured.address)
    yield stubs
    stubs.channel.close()


def hour_ago_minutes(count: int) -> list[int]:
    start = minute_start(datetime.now(UTC) - timedelta(hours=1))
    return [start + 60 * n for n in range(count)]


def sync(stubs, user, requests):
    return [response.ack for response in stubs.metrics.SyncReadings(iter(requests), metadata=user.auth, timeout=30)]


def sync_request(sequence: int, readings, device_id: str = "watch-1"):
    return metric_pb2.SyncReadingsRequest(batch=batch(readings, device_id=device_id, sequence=sequence))


def test_calls_are_counted_by_service_method_and_status_code_with_their_latency(measured, measured_stubs):
    user = register_and_login(measured_stubs, "calls")
    wrong = account_pb2.LoginRequest(username="calls", password="not the password at all")
    for _ in range(2):
        assert rpc_error(lambda: measured_stubs.accounts.Login(wrong)).code() == grpc.StatusCode.UNAUTHENTICATED
    view = metric_pb2.ViewMetricRequest(metric=STEPS, preset=common_pb2.RANGE_PRESET_TODAY)
    assert rpc_error(lambda: measured_stubs.metrics.ViewMetric(view)).code() == grpc.StatusCode.UNAUTHENTICATED
    measured_stubs.metrics.ViewMetric(view, metadata=user.auth)

    figures = scrape(measured.metrics_port)
    login = {"grpc_service": ACCOUNTS, "grpc_method": "Login", "grpc_type": "unary"}
    assert figures.value("grpc_server_started_total", **login) == 3  # one by register_and_login, two wrong
    assert figures.value("grpc_server_handled_total", **login, grpc_code="OK") == 1
    assert figures.value("grpc_server_handled_total", **login, grpc_code="UNAUTHENTICATED") == 2
    assert figures.value("grpc_server_handling_seconds_count", **login) == 3
    assert figures.value("grpc_server_handling_seconds_sum", **login) > 0
    viewed = {"grpc_service": METRICS, "grpc_method": "ViewMetric", "grpc_type": "unary"}
    # Refused by the authentication interceptor, inside the metrics one: still counted, with its code.
    assert figures.value("grpc_server_handled_total", **viewed, grpc_code="UNAUTHENTICATED") == 1
    assert figures.value("grpc_server_handled_total", **viewed, grpc_code="OK") == 1
    register = {"grpc_service": ACCOUNTS, "grpc_method": "Register"}
    assert figures.value("grpc_server_handled_total", **register, grpc_type="unary", grpc_code="OK") == 1


def test_synced_readings_are_counted_as_accepted_duplicate_or_rejected_and_every_durable_ack_is_timed(
    measured, measured_stubs
):
    user = register_and_login(measured_stubs, "syncer")
    minutes = hour_ago_minutes(30)
    first = [sync_request(n + 1, [reading(STEPS, m, 10) for m in minutes[n * 10 : n * 10 + 10]]) for n in range(3)]
    acks = sync(measured_stubs, user, first)
    assert [a.status for a in acks] == [Ack.STATUS_ACCEPTED] * 3
    # The device lost the last ack and resends that batch; and one batch has a reading two days ahead.
    future = minute_start(datetime.now(UTC) + timedelta(days=2))
    again = [first[2], sync_request(4, [reading(STEPS, future, 5), reading(STEPS, future + 60, 5)])]
    acks = sync(measured_stubs, user, again)
    assert [a.status for a in acks] == [Ack.STATUS_DUPLICATE, Ack.STATUS_REJECTED]

    figures = scrape(measured.metrics_port)
    assert figures.value("fittrack_ingest_readings_total", outcome="accepted") == 30
    assert figures.value("fittrack_ingest_readings_total", outcome="duplicate") == 10
    assert figures.value("fittrack_ingest_readings_total", outcome="rejected") == 2
    assert figures.value("fittrack_ingest_batches_total", outcome="accepted") == 3
    assert figures.value("fittrack_ingest_batches_total", outcome="duplicate") == 1
    assert figures.value("fittrack_ingest_batches_total", outcome="rejected") == 1
    assert figures.value("fittrack_ingest_ack_seconds_count") == 4  # the durable acks: accepted and duplicate
    assert figures.value("fittrack_ingest_batches_in_flight") == 0
    sync_calls = {"grpc_service": METRICS, "grpc_method": "SyncReadings", "grpc_type": "bidi_stream"}
    assert figures.value("grpc_server_handled_total", **sync_calls, grpc_code="OK") == 2


def test_an_upload_counts_its_batches_and_readings_and_a_refused_upload_counts_all_of_them_rejected(
    measured, measured_stubs
):
    user = register_and_login(measured_stubs, "uploader")
    minutes = hour_ago_minutes(5)
    batches = [batch([reading(STEPS, m, 3)], sequence=n + 1) for n, m in enumerate(minutes)]
    assert upload(measured_stubs, user, *batches).batches_accepted == 5
    assert upload(measured_stubs, user, *batches[:2]).batches_duplicate == 2
    future = minute_start(datetime.now(UTC) + timedelta(days=2))
    refused = [batch([reading(STEPS, minutes[0], 1)]), batch([reading(STEPS, future, 1), reading(STEPS, future, 2)])]
    assert rpc_error(lambda: upload(measured_stubs, user, *refused)).code() == grpc.StatusCode.INVALID_ARGUMENT

    figures = scrape(measured.metrics_port)
    assert figures.value("fittrack_ingest_batches_total", outcome="accepted") == 5
    assert figures.value("fittrack_ingest_readings_total", outcome="accepted") == 5
    assert figures.value("fittrack_ingest_batches_total", outcome="duplicate") == 2
    assert figures.value("fittrack_ingest_readings_total", outcome="duplicate") == 2
    assert figures.value("fittrack_ingest_batches_total", outcome="rejected") == 2
    assert figures.value("fittrack_ingest_readings_total", outcome="rejected") == 3
    assert figures.value("fittrack_ingest_ack_seconds_count") == 2  # one summary per stored upload
    upload_calls = {"grpc_service": METRICS, "grpc_method": "UploadReadings", "grpc_type": "client_stream"}
    assert figures.value("grpc_server_handled_total", **upload_calls, grpc_code="INVALID_ARGUMENT") == 1


def test_an_open_stream_is_counted_while_it_is_open(measured, measured_stubs):
    user = register_and_login(measured_stubs, "streamer")
    subscribe = {"grpc_service": NOTIFICATIONS, "grpc_method": "SubscribeNotifications"}
    stream = measured_stubs.notifications.SubscribeNotifications(
        notification_pb2.SubscribeNotificationsRequest(), metadata=user.auth
    )
    stream.initial_metadata()
    try:
        eventually(
            lambda: scrape(measured.metrics_port).value("fittrack_grpc_open_streams", **subscribe), lambda n: n == 1
        )
    finally:
        stream.cancel()
    figures = eventually(
        lambda: scrape(measured.metrics_port), lambda f: f.value("fittrack_grpc_open_streams", **subscribe) == 0
    )
    ended = {**subscribe, "grpc_type": "server_stream", "grpc_code": "CANCELLED"}
    assert figures.value("grpc_server_handled_total", **ended) == 1


def test_store_calls_are_timed_by_store_and_operation(measured, measured_stubs):
    user = register_and_login(measured_stubs, "stored")
    figures = scrape(measured.metrics_port)
    assert figures.value("fittrack_store_operation_seconds_count", store="sqlite", operation="users.add") == 1
    assert figures.value("fittrack_store_operation_seconds_count", store="sqlite", operation="sessions.create") == 1
    minutes = hour_ago_minutes(3)
    assert sync(measured_stubs, user, [sync_request(1, [reading(STEPS, m, 1) for m in minutes])])[0].status == (
        Ack.STATUS_ACCEPTED
    )
    # The embedded persister writes the batch into the metric store behind the ack.
    eventually(
        lambda: scrape(measured.metrics_port).value(
            "fittrack_store_operation_seconds_count", store="sqlite", operation="metric_store.upsert_minutes"
        ),
        lambda n: n == 1,
    )


def test_no_label_holds_a_user_id_username_or_token_after_a_session(measured, measured_stubs):
    user = register_and_login(measured_stubs, "private-person")
    sync(measured_stubs, user, [sync_request(1, [reading(STEPS, hour_ago_minutes(1)[0], 1)], device_id="my-watch")])
    refreshed = measured_stubs.accounts.RefreshToken(
        account_pb2.RefreshTokenRequest(refresh_token=user.login.refresh_token)
    )
    rpc_error(lambda: measured_stubs.accounts.Login(account_pb2.LoginRequest(username=user.username, password="x")))
    figures = scrape(measured.metrics_port)
    secrets = {user.user_id, user.username, user.login.access_token, user.login.refresh_token, "my-watch"}
    secrets |= {refreshed.access_token, refreshed.refresh_token}
    leaked = {value for value in figures.label_values() for secret in secrets if secret in value}
    assert not leaked
    assert not any(secret in figures.text for secret in secrets)
    # Every label value of Fittrack's own series is one the code chose: names, codes, outcomes, numbers.
    ours = {
        value
        for name, labels, _ in figures.samples
        if name.startswith(("grpc_", "fittrack_"))
        for key, value in labels.items()
        if key != "le"
    }
    assert ours and all(re.fullmatch(r"[A-Za-z0-9_.]+", value) for value in ours), ours


def test_metrics_off_serves_no_endpoint_and_records_nothing(tmp_path, clock):
    """Unset, the setting costs nothing: no exporter, and the stores are the adapters themselves, untimed."""
    running = RunningServer(Config(**server_settings(tmp_path)), clock)
    try:
        assert running.server.metrics is None
        assert not running.server.app.instruments.enabled
        assert type(running.server.app.metrics._store).__name__ == "SqliteMetricStore"
    finally:
        running.stop()


def start_server(tmp_path, **settings: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "FITTRACK_LISTEN": f"127.0.0.1:{free_port()}",
        "FITTRACK_DATA_DIR": str(tmp_path / "var"),
        "FITTRACK_BCRYPT_ROUNDS": "4",
        **settings,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fittrack.app.server"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_metrics_address_that_is_taken_stops_the_server_from_starting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = start_server(tmp_path, FITTRACK_METRICS_LISTEN=f"127.0.0.1:{taken.getsockname()[1]}")
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "FITTRACK_METRICS_LISTEN" in output and "already in use" in output.lower()
    assert "Traceback" not in output


def test_a_metrics_address_that_is_not_host_and_port_is_refused_naming_the_setting(tmp_path):
    process = start_server(tmp_path, FITTRACK_METRICS_LISTEN="metrics")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "FITTRACK_METRICS_LISTEN" in output and "Traceback" not in output


def test_port_0_picks_a_free_port_that_the_server_logs_and_serves_the_process_figures_on(tmp_path):
    process = start_server(tmp_path, FITTRACK_METRICS_LISTEN="127.0.0.1:0")
    try:
        line = process.stdout.readline()
        while line and "metrics: GET" not in line:
            line = process.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line).group(1))
        while line and "serving on" not in line:  # signals are the server's own from then on
            line = process.stdout.readline()
        figures = scrape(port)
        assert figures.value("process_resident_memory_bytes") > 0
        assert figures.series("python_info")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.fixture
def guarded(tmp_path, clock):
    """A server that throttles an address after 3 failed logins, exporting its metrics."""
    settings = server_settings(tmp_path, metrics_listen="127.0.0.1:0", max_login_failures_per_address=3)
    running = RunningServer(Config(**settings), clock)
    running.metrics_port = running.server.metrics.port
    yield running
    running.stop()


def test_logins_throttled_addresses_and_reused_refresh_tokens_are_counted(guarded):
    stubs = Stubs.connect(guarded.address)
    try:
        user = register_and_login(stubs, "guarded")
        refresh = account_pb2.RefreshTokenRequest(refresh_token=user.login.refresh_token)
        stubs.accounts.RefreshToken(refresh)
        # The same refresh token again: reuse, which revokes the session.
        assert rpc_error(lambda: stubs.accounts.RefreshToken(refresh)).code() == grpc.StatusCode.UNAUTHENTICATED
        wrong = account_pb2.LoginRequest(username="guarded", password="not the password at all")
        codes = [rpc_error(lambda: stubs.accounts.Login(wrong)).code() for _ in range(5)]
    finally:
        stubs.channel.close()
    assert codes[:3] == [grpc.StatusCode.UNAUTHENTICATED] * 3
    assert codes[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2

    figures = scrape(guarded.metrics_port)
    assert figures.value("fittrack_logins_total", method="password", outcome="success") == 1
    assert figures.value("fittrack_logins_total", method="password", outcome="failure") == 3
    assert figures.value("fittrack_logins_total", method="password", outcome="throttled") == 2
    assert figures.value("fittrack_logins_total", method="refresh", outcome="success") == 1
    assert figures.value("fittrack_refresh_token_reuse_total") == 1
    assert figures.value("fittrack_throttled_addresses_total") == 1
    assert figures.value("fittrack_throttled_accounts_total") == 0
    assert not {user.user_id, user.username, "127.0.0.1"} & figures.label_values()


@pytest.fixture
def pushing(tmp_path, clock):
    """A server whose dispatcher pushes to a webhook, retrying twice (3 attempts) before a dead letter."""
    webhook = Webhook()
    settings = server_settings(
        tmp_path,
        metrics_listen="127.0.0.1:0",
        webhook_url=webhook.url,
        push_max_attempts=3,
        push_backoff_base_seconds=0.2,
        push_backoff_max_seconds=0.5,
    )
    running = RunningServer(Config(**settings), clock)
    running.metrics_port = running.server.metrics.port
    running.webhook = webhook
    yield running
    running.stop()
    webhook.close()


def test_notifications_stored_pushed_retried_and_dead_lettered_are_counted(pushing, clock):
    stubs = Stubs.connect(pushing.address)
    try:
        lucky, unlucky = register_and_login(stubs, "lucky", "Europe/Paris"), register_and_login(stubs, "unlucky")
        pushing.webhook.answer(lucky.user_id, 503)  # fails once, then takes it
        pushing.webhook.fail(unlucky.user_id, 503)  # fails every attempt: a dead letter after the third
        for user, zone in ((lucky, "Europe/Paris"), (unlucky, "UTC")):
            goal = goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=100)
            stubs.goals.CreateGoal(goal, metadata=user.auth)
            upload(stubs, user, batch([reading(STEPS, local_midnight(clock, zone) + 600, 150)]))
    finally:
        stubs.channel.close()
    figures = eventually(
        lambda: scrape(pushing.metrics_port),
        lambda f: (
            f.value("fittrack_notifications_pushed_total") == 1
            and f.value("fittrack_notifications_dead_lettered_total") == 1
        ),
        timeout=30,
    )
    assert figures.value("fittrack_notifications_stored_total") == 2
    # lucky's one retry, and unlucky's two before its last attempt failed.
    assert figures.value("fittrack_notifications_push_retries_total") == 3
    assert [p.status for p in pushing.webhook.received(lucky.user_id)] == [503, 200]
    assert [p.status for p in pushing.webhook.received(unlucky.user_id)] == [503, 503, 503]


def test_an_evaluation_slot_is_counted_with_the_users_it_evaluated_and_its_duration(tmp_path, clock):
    from tests.e2e.test_evaluation import next_slot, notifications_of, steps_goal

    settings = server_settings(
        tmp_path, metrics_listen="127.0.0.1:0", evaluation_tick_seconds=0.1, evaluation_catch_up_minutes=0
    )
    running = RunningServer(Config(**settings), clock)
    stubs = Stubs.connect(running.address)
    try:
        before = scrape(running.server.metrics.port)
        assert before.value("fittrack_evaluator_slots_total") == 0
        user = register_and_login(stubs, "evaluated", time_zone="America/St_Johns")
        steps_goal(stubs, user)
        moment, _ = next_slot(clock, "America/St_Johns")
        clock.advance(moment - clock() + timedelta(seconds=1))  # the next tick finds the user's slot
        login = stubs.accounts.Login(account_pb2.LoginRequest(username=user.username, password=user.password))
        user = User(user.user_id, user.username, user.password, login)  # the clock's jump outlived the old token
        kind = notification_pb2.NOTIFICATION_KIND_BEHIND_GOAL
        eventually(lambda: notifications_of(stubs, user, kind), lambda found: len(found) == 1)
        figures = eventually(
            lambda: scrape(running.server.metrics.port),
            lambda f: f.value("fittrack_evaluator_slots_total") >= 1,
        )
        # One zone has a goal to check, so one slot ran, over its one user, and its time was measured.
        assert figures.value("fittrack_evaluator_slots_total") == 1
        assert figures.value("fittrack_evaluator_users_evaluated_total") == 1
        assert figures.value("fittrack_evaluator_slot_seconds_count") == 1
        assert figures.value("fittrack_evaluator_slot_seconds_sum") > 0
        assert figures.value("fittrack_notifications_stored_total") == 1
    finally:
        stubs.channel.close()
        running.stop()
