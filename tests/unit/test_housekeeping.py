"""Hourly housekeeping: stale failed-login records go, and nothing the throttle still needs."""

from datetime import UTC, datetime, timedelta

from fittrack.core.domain.throttle import LoginFailures, ThrottlePolicy
from fittrack.core.services.housekeeping import Housekeeping
from tests.unit.fakes import FakeAccountsDatabase

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_stale_failed_login_records_are_forgotten_at_the_first_tick_of_each_hour():
    db = FakeAccountsDatabase()
    with db() as uow:
        uow.login_failures.put(LoginFailures("guess", NOON, 1, last_failure=NOON - timedelta(days=1, minutes=1)))
        uow.login_failures.put(LoginFailures("alice", NOON, 3, last_failure=NOON - timedelta(hours=23)))
        uow.commit()
    housekeeping = Housekeeping(db, ThrottlePolicy())

    # A window inside one hour does nothing; the one that reaches 12:00 cleans up.
    assert housekeeping.run_due(NOON - timedelta(minutes=30), NOON - timedelta(seconds=1)) == 0
    assert housekeeping.run_due(NOON - timedelta(seconds=1), NOON + timedelta(seconds=29)) == 1
    with db() as uow:
        assert uow.login_failures.get("guess") is None
        # Still within forget_after: its pauses keep growing if the attacks go on.
        assert uow.login_failures.get("alice").count == 3


def test_evaluation_claims_go_two_days_after_their_lease_ended_finished_or_not():
    db = FakeAccountsDatabase()
    with db() as uow:
        uow.evaluation_claims.claim("slot|UTC|2026-11-22|11:00", "e1", NOON, NOON - timedelta(days=2, seconds=1))
        uow.evaluation_claims.claim("slot|UTC|2026-11-23|11:00", "e1", NOON, NOON - timedelta(days=1))
        uow.evaluation_claims.finish("slot|UTC|2026-11-23|11:00", "e1", NOON)
        uow.commit()

    assert Housekeeping(db, ThrottlePolicy()).run_due(NOON - timedelta(seconds=1), NOON) == 1
    with db() as uow:
        # The newer one is still there: finished, so nobody can claim it again.
        assert uow.evaluation_claims.claim("slot|UTC|2026-11-23|11:00", "e2", NOON, NOON) is False
        assert uow.evaluation_claims.claim("slot|UTC|2026-11-22|11:00", "e2", NOON, NOON) is True
