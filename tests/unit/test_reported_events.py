"""What the services report to their observer (the audit log and the metrics listen there), case by case,
through the real wiring on in-memory stores."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from fittrack.app.config import Config
from fittrack.core.adapters.observers import Observers
from fittrack.core.domain.accounts import ProfileChanges
from fittrack.core.domain.delivery import PushOutcome, PushResult, RetryPolicy
from fittrack.core.domain.errors import FailedPrecondition, ResourceExhausted, Unauthenticated
from fittrack.core.domain.events import (
    AccountDeleted,
    AccountThrottled,
    AddressThrottled,
    Confirming,
    EvaluationSlotRun,
    LoginAttempted,
    LoginMethod,
    LoginOutcome,
    NotificationDeadLettered,
    NotificationPushed,
    NotificationsStored,
    PasswordChanged,
    PasswordConfirmationFailed,
    PushRetried,
    RefreshTokenReused,
)
from fittrack.core.domain.notifications import Notification, NotificationKind, report_ready_key
from fittrack.core.domain.throttle import AddressPolicy
from fittrack.core.ports import Observer
from fittrack.core.services.accounts import Accounts, AccountSettings
from fittrack.core.services.dispatch import Dispatcher, DispatchSettings
from fittrack.core.services.evaluation import EvaluationSettings, GoalEvaluator
from tests.unit.fakes import (
    PASSWORD,
    FakeAccountsDatabase,
    FakeApp,
    FakeClock,
    FakeDeadLetterLog,
    FakeHasher,
    FakeIdentityProvider,
    FakeMetricStore,
    FakePushChannel,
    FakeSink,
    RecordingObserver,
    fake_app,
    make_signer,
)
from tests.unit.test_evaluation import RecordingQueue, add_goal, add_user
from tests.unit.test_sso import PROVIDER, claims

T0 = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
HOME = "203.0.113.7"
ELSEWHERE = "198.51.100.23"
SMALL_LIMITS = Config(max_login_failures_per_account=3, max_login_failures_per_address=4)
PASSWORD_LOGIN = LoginMethod.PASSWORD
SUCCESS, FAILURE, THROTTLED = LoginOutcome.SUCCESS, LoginOutcome.FAILURE, LoginOutcome.THROTTLED


@pytest.fixture
def app() -> FakeApp:
    return fake_app(T0, SMALL_LIMITS)


def register(app: FakeApp, username: str = "alice", password: str = PASSWORD) -> str:
    return app.accounts.register(username, password, ProfileChanges()).user.user_id


def wrong_login(app: FakeApp, username: str, address: str = HOME) -> None:
    with pytest.raises(Unauthenticated):
        app.accounts.login(username, "not the password", address)


# --- logins ----------------------------------------------------------------------


def test_a_password_login_is_reported_with_its_user_and_client_address(app):
    alice = register(app)
    app.accounts.login("alice", PASSWORD, HOME)
    assert app.observer.events == [LoginAttempted(PASSWORD_LOGIN, SUCCESS, alice, HOME)]


def test_a_wrong_password_is_a_failure_of_the_account_and_an_unknown_name_a_failure_of_nobody(app):
    alice = register(app)
    wrong_login(app, "alice")
    wrong_login(app, "nobody-here")
    wrong_login(app, "not a possible name!")
    assert app.observer.events == [
        LoginAttempted(PASSWORD_LOGIN, FAILURE, alice, HOME),
        LoginAttempted(PASSWORD_LOGIN, FAILURE, None, HOME),
        LoginAttempted(PASSWORD_LOGIN, FAILURE, None, HOME),
    ]


def test_a_right_password_that_has_expired_is_a_failed_login(app):
    alice = register(app)
    app.clock.advance(timedelta(days=SMALL_LIMITS.password_max_age_days + 1))
    with pytest.raises(FailedPrecondition):
        app.accounts.login("alice", PASSWORD, HOME)
    assert app.observer.events == [LoginAttempted(PASSWORD_LOGIN, FAILURE, alice, HOME)]


def test_an_account_is_reported_throttled_once_as_it_reaches_its_limit_and_its_next_login_is_throttled(app):
    alice = register(app)
    for attempt in range(3):
        wrong_login(app, "alice", address=f"192.0.2.{attempt}")
    throttled = app.observer.of(AccountThrottled)
    assert throttled == [AccountThrottled(alice, "192.0.2.2")]  # the third failure, the limit
    app.observer.clear()
    with pytest.raises(ResourceExhausted):
        app.accounts.login("alice", PASSWORD, ELSEWHERE)
    assert app.observer.events == [LoginAttempted(PASSWORD_LOGIN, THROTTLED, None, ELSEWHERE)]


def test_a_name_no_account_has_is_throttled_the_same_way_without_a_user(app):
    for _ in range(3):
        wrong_login(app, "nobody-here", address=ELSEWHERE)
    assert app.observer.of(AccountThrottled) == [AccountThrottled(None, ELSEWHERE)]


def test_an_address_is_reported_throttled_once_at_its_limit_over_any_names_and_then_refused(app):
    register(app)
    for name in ("alice", "bob", "carol", "not a possible name!"):
        wrong_login(app, name)
    assert app.observer.of(AddressThrottled) == [AddressThrottled(HOME)]
    app.observer.clear()
    with pytest.raises(ResourceExhausted):
        app.accounts.login("alice", PASSWORD, HOME)
    app.accounts.login("alice", PASSWORD, ELSEWHERE)
    assert app.observer.events == [
        LoginAttempted(PASSWORD_LOGIN, THROTTLED, None, HOME),
        LoginAttempted(PASSWORD_LOGIN, SUCCESS, app.database.user_named("alice").user_id, ELSEWHERE),
    ]


def test_three_failures_from_an_address_allowed_four_are_not_a_throttle(app):
    register(app)
    for name in ("alice", "bob", "carol"):
        wrong_login(app, name)
    assert app.observer.of(AddressThrottled) == []


# --- refresh tokens ----------------------------------------------------------------


def test_a_refresh_is_a_login_by_refresh_token_and_a_reused_token_is_reported_with_its_owner(app):
    alice = register(app)
    first = app.accounts.login("alice", PASSWORD, HOME)
    app.observer.clear()
    app.accounts.refresh(first.refresh_token, HOME)
    with pytest.raises(Unauthenticated, match="already used"):
        app.accounts.refresh(first.refresh_token, ELSEWHERE)
    with pytest.raises(Unauthenticated):
        app.accounts.refresh("a token nobody was given", ELSEWHERE)
    assert app.observer.events == [
        LoginAttempted(LoginMethod.REFRESH, SUCCESS, alice, HOME),
        RefreshTokenReused(alice, ELSEWHERE),
        LoginAttempted(LoginMethod.REFRESH, FAILURE, alice, ELSEWHERE),
        LoginAttempted(LoginMethod.REFRESH, FAILURE, None, ELSEWHERE),
    ]


# --- passwords and accounts ----------------------------------------------------------


def test_a_password_change_is_reported_with_the_user_and_address_with_a_token_or_by_username(app):
    alice = register(app)
    principal = app.accounts.authenticate(app.accounts.login("alice", PASSWORD, HOME).access_token)
    app.observer.clear()
    app.accounts.change_password(principal, "", PASSWORD, "Second-password-9", HOME)
    app.accounts.change_password(None, "alice", "Second-password-9", "Third-password-9", ELSEWHERE)
    assert app.observer.events == [
        PasswordChanged(alice, HOME),
        PasswordChanged(alice, ELSEWHERE),
    ]


def test_changing_the_password_by_username_with_a_wrong_one_is_a_failed_login_and_changes_nothing(app):
    alice = register(app)
    with pytest.raises(Unauthenticated):
        app.accounts.change_password(None, "alice", "not the password", "Second-password-9", HOME)
    assert app.observer.events == [LoginAttempted(PASSWORD_LOGIN, FAILURE, alice, HOME)]


def test_a_deleted_account_is_reported_and_a_refused_deletion_as_a_failed_confirmation(app):
    alice = register(app)
    principal = app.accounts.authenticate(app.accounts.login("alice", PASSWORD, HOME).access_token)
    app.observer.clear()
    with pytest.raises(Unauthenticated):
        app.accounts.delete_account(principal, "not the password", ELSEWHERE)
    app.accounts.delete_account(principal, PASSWORD, HOME)
    assert app.observer.events == [
        PasswordConfirmationFailed(alice, Confirming.ACCOUNT_DELETION, ELSEWHERE),
        AccountDeleted(alice, HOME),
    ]


def test_a_wrong_current_password_with_a_token_is_a_failed_confirmation_and_changes_nothing(app):
    alice = register(app)
    principal = app.accounts.authenticate(app.accounts.login("alice", PASSWORD, HOME).access_token)
    app.observer.clear()
    with pytest.raises(Unauthenticated):
        app.accounts.change_password(principal, "", "a guess with a stolen token", "Second-password-9", ELSEWHERE)
    assert app.observer.events == [PasswordConfirmationFailed(alice, Confirming.PASSWORD_CHANGE, ELSEWHERE)]
    app.accounts.login("alice", PASSWORD, HOME)  # the password is still the old one


# --- SSO -------------------------------------------------------------------------------


def sso_accounts(observer: Observer) -> tuple[Accounts, FakeIdentityProvider]:
    provider = FakeIdentityProvider(PROVIDER)
    accounts = Accounts(
        FakeAccountsDatabase(),
        FakeMetricStore(),
        FakeHasher(),
        make_signer(),
        FakeClock(T0),
        AccountSettings(),
        identity_providers={"corp": provider},
        observer=observer,
    )
    return accounts, provider


def test_an_sso_login_is_reported_with_its_provider_and_a_replayed_token_as_a_failure():
    observer = RecordingObserver()
    accounts, provider = sso_accounts(observer)
    token = provider.issue(claims())
    session = accounts.login_sso("corp", id_token=token, nonce="n-1", address=HOME)
    with pytest.raises(Unauthenticated):
        accounts.login_sso("corp", id_token=token, nonce="n-1", address=HOME)
    assert observer.events == [
        LoginAttempted(LoginMethod.SSO, SUCCESS, session.user_id, HOME, "corp"),
        LoginAttempted(LoginMethod.SSO, FAILURE, None, HOME, "corp"),
    ]


def test_a_throttled_sso_login_names_only_a_configured_provider_never_the_callers_text():
    observer = RecordingObserver()
    accounts, provider = sso_accounts(observer)
    for _ in range(AddressPolicy().max_failures):
        with pytest.raises(Unauthenticated):
            accounts.login_sso("corp", id_token="not a token", nonce="n-1", address=HOME)
    for name in ("corp", "made-up\nprovider"):
        with pytest.raises(ResourceExhausted):
            accounts.login_sso(name, id_token="not a token", nonce="n-1", address=HOME)
    assert observer.events[-2:] == [
        LoginAttempted(LoginMethod.SSO, THROTTLED, None, HOME, "corp"),
        LoginAttempted(LoginMethod.SSO, THROTTLED, None, HOME, None),
    ]


# --- notifications -------------------------------------------------------------------


WEEKS = itertools.count()


def report_ready(user_id: str) -> Notification:
    week = date(2026, 6, 1) - timedelta(days=7 * next(WEEKS))  # a week of its own: no two share a key
    key = report_ready_key(user_id, week)
    return Notification(uuid.uuid4().hex, user_id, NotificationKind.REPORT_READY, "Ready", "Your report", T0, key)


def test_the_wired_dispatcher_reports_what_it_stored_once(app):
    alice = app.sign_up("alice")
    notifications = [report_ready(alice.user_id), report_ready(alice.user_id)]
    app.dispatcher.handle(notifications)
    app.dispatcher.handle(notifications)  # handed over again: nothing new
    assert app.observer.of(NotificationsStored) == [NotificationsStored(2)]


def test_pushes_are_reported_as_pushed_retried_and_dead_lettered(app):
    alice = app.sign_up("alice")
    retry = PushResult(PushOutcome.RETRY, "HTTP 503")
    channel = FakePushChannel(retry, retry, PushResult(PushOutcome.PERMANENT, "HTTP 404"))
    observer = RecordingObserver()
    settings = DispatchSettings(retry=RetryPolicy(max_attempts=2, base_seconds=1, max_seconds=1))
    dispatcher = Dispatcher(
        app.database, FakeSink(), app.clock, channel, FakeDeadLetterLog(), settings, observer=observer
    )
    first, second, third = (report_ready(alice.user_id) for _ in range(3))
    dispatcher.handle([first])  # 503: retried
    app.clock.advance(timedelta(seconds=2))
    dispatcher.push_due()  # 503 on the last attempt: dead
    dispatcher.handle([second])  # 404: dead at once
    dispatcher.handle([third])  # delivered
    assert observer.events == [
        NotificationsStored(1),
        PushRetried(),
        NotificationDeadLettered(),
        NotificationsStored(1),
        NotificationDeadLettered(),
        NotificationsStored(1),
        NotificationPushed(),
    ]


# --- evaluation -------------------------------------------------------------------------


def test_each_slot_run_is_reported_with_its_users_and_how_long_it_took():
    db, store, queue = FakeAccountsDatabase(), FakeMetricStore(), RecordingQueue()
    observer = RecordingObserver()
    clock = FakeClock(datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    evaluator = GoalEvaluator(db, store, queue, clock, EvaluationSettings(page_size=2), observer=observer)
    for n in range(3):
        add_user(db, f"london{n}", "Europe/London")
        add_goal(db, f"london{n}")
    evaluator.run_due(datetime(2026, 11, 18, 15, 59, tzinfo=UTC), datetime(2026, 11, 18, 16, 0, tzinfo=UTC))
    (run,) = observer.events
    assert isinstance(run, EvaluationSlotRun) and run.users == 3 and 0 <= run.seconds < 5


# --- the composite ------------------------------------------------------------------------


class Broken(Observer):
    def saw(self, event) -> None:
        raise RuntimeError("a listener that fails")


def test_every_listener_hears_every_event_even_after_one_fails(caplog):
    first, last = RecordingObserver(), RecordingObserver()
    observers = Observers([first, Broken(), last])
    event = AccountDeleted("u-1", HOME)
    observers.saw(event)
    assert first.events == last.events == [event]
    assert "Broken failed on AccountDeleted" in caplog.text


def test_a_process_reports_to_one_observer_holding_the_audit_log_unless_it_is_off():
    from fittrack.app.wiring import process_observer
    from fittrack.core.adapters.audit import AuditLog

    assert [type(o) for o in process_observer(Config()).observers] == [AuditLog]
    assert process_observer(Config(audit_log="off")).observers == []
