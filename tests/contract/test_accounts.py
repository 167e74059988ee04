"""The account repositories keep the same promises in every backend: the fake, SQLite and PostgreSQL.

The unit tests of the services run on the fake; these checks are what make that proof hold for the real stores."""

from dataclasses import replace
from datetime import date, time, timedelta

import pytest

from fittrack.core.domain.accounts import Credentials, Profile, User
from fittrack.core.domain.delivery import Delivery, DeliveryState
from fittrack.core.domain.errors import AlreadyExists, NotFound
from fittrack.core.domain.goals import GoalPeriod
from fittrack.core.domain.metrics import MetricKind
from fittrack.core.domain.notifications import Notification, NotificationKind, NotificationPreferences
from fittrack.core.domain.oidc import ExternalIdentity
from fittrack.core.domain.throttle import LoginFailures
from fittrack.core.ports import RefreshRecord
from tests.contract.builders import (
    DAY,
    ISSUER,
    LEASE,
    SLOT_KEY,
    T0,
    WORK_LEASE,
    add_goals,
    add_user,
    claim_work,
    claimed,
    delivery_states,
    goal,
    notification,
    stored_with_deliveries,
    user,
)

# --- unit of work -------------------------------------------------------------------


def test_changes_not_committed_are_discarded(uow):
    with uow() as unit:
        unit.users.add(*user())
    with uow() as unit:
        assert unit.users.get("u1") is None


def test_committed_changes_are_kept(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.users.get_by_username("alice").user_id == "u1"


def test_an_error_inside_the_unit_of_work_discards_its_changes(uow):
    add_user(uow)
    with pytest.raises(AlreadyExists), uow() as unit:
        unit.goals.add(goal("g1"))
        unit.users.add(*user("u2", "ALICE"))
        unit.commit()
    with uow() as unit:
        assert unit.goals.list_for_user("u1") == []
        assert unit.users.get("u2") is None


# --- users and sessions -------------------------------------------------------------


def test_usernames_are_unique_and_found_regardless_of_case(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.users.get_by_username("ALICE").user_id == "u1"
        with pytest.raises(AlreadyExists):
            unit.users.add(*user("u2", "Alice"))


def test_deleting_a_user_removes_their_goals_notifications_and_sessions(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", "u2"))
        unit.notifications.add(notification("n1"))
        unit.sessions.create("s1", "u1", T0)
        unit.sessions.add_refresh(RefreshRecord("h1", "s1", "u1", T0 + timedelta(days=1), False))
        unit.commit()
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.users.get("u1") is None
        assert unit.users.get_credentials("u1") is None
        assert unit.goals.get("g1") is None
        assert unit.goals.get("g2") is not None
        assert unit.notifications.page("u1", False, 10, None).notifications == []
        assert not unit.sessions.is_active("s1")
        assert unit.sessions.get_refresh("h1") is None


def test_a_revoked_session_is_inactive_and_revoke_all_ends_only_that_users_sessions(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        for session_id, user_id in [("s1", "u1"), ("s2", "u1"), ("s3", "u2")]:
            unit.sessions.create(session_id, user_id, T0)
        unit.sessions.revoke_all("u1", T0)
        unit.commit()
    with uow() as unit:
        assert [unit.sessions.is_active(s) for s in ("s1", "s2", "s3", "nope")] == [False, False, True, False]


def test_a_session_remembers_when_its_login_happened(uow):
    add_user(uow)
    with uow() as unit:
        unit.sessions.create("s1", "u1", T0)
        unit.commit()
    with uow() as unit:
        assert unit.sessions.started_at("s1") == T0
        assert unit.sessions.started_at("nope") is None


def test_a_refresh_token_can_be_marked_used(uow):
    add_user(uow)
    with uow() as unit:
        unit.sessions.create("s1", "u1", T0)
        unit.sessions.add_refresh(RefreshRecord("h1", "s1", "u1", T0, False))
        unit.sessions.mark_refresh_used("h1")
        unit.commit()
    with uow() as unit:
        assert unit.sessions.get_refresh("h1") == RefreshRecord("h1", "s1", "u1", T0, True)


# --- goals --------------------------------------------------------------------------


def test_a_second_goal_for_the_same_metric_and_period_already_exists(uow):
    add_user(uow)
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", period=GoalPeriod.WEEKLY))
        with pytest.raises(AlreadyExists):
            unit.goals.add(goal("g3"))


def test_nothing_is_added_for_an_account_deleted_a_moment_before_and_the_unit_stays_usable(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        with pytest.raises(NotFound, match="no longer exists"):
            unit.goals.add(goal("g1"))
        with pytest.raises(NotFound, match="no longer exists"):
            unit.preferences.put(NotificationPreferences("u1", False))
        with pytest.raises(NotFound, match="no longer exists"):
            unit.sessions.create("s1", "u1", T0)
        unit.goals.add(goal("g2", user_id="u2"))  # a PostgreSQL transaction is not aborted by the refusals
        unit.commit()
    with uow() as unit:
        assert unit.goals.get("g1") is None and unit.sessions.started_at("s1") is None
        assert [g.goal_id for g in unit.goals.list_for_user("u2")] == ["g2"]


def test_goals_are_listed_oldest_first_and_inactive_ones_only_on_request(uow):
    add_user(uow)
    with uow() as unit:
        unit.goals.add(goal("g1"))
        unit.goals.add(goal("g2", period=GoalPeriod.WEEKLY, active=False))
        unit.commit()
    with uow() as unit:
        assert [g.goal_id for g in unit.goals.list_for_user("u1")] == ["g1"]
        assert [g.goal_id for g in unit.goals.list_for_user("u1", include_inactive=True)] == ["g1", "g2"]


# --- notifications ------------------------------------------------------------------


def test_a_notification_with_a_seen_idempotency_key_is_dropped(uow):
    add_user(uow)
    with uow() as unit:
        assert unit.notifications.add(notification("n1", key="k"))
        assert not unit.notifications.add(notification("n2", key="k"))
        assert [n.notification_id for n in unit.notifications.page("u1", False, 10, None).notifications] == ["n1"]


def test_notification_pages_are_newest_first_and_continue_from_their_cursor(uow):
    add_user(uow)
    with uow() as unit:
        for i in range(5):
            unit.notifications.add(notification(f"n{i}"))
        first = unit.notifications.page("u1", False, 2, None)
        second = unit.notifications.page("u1", False, 2, first.next_cursor)
        third = unit.notifications.page("u1", False, 2, second.next_cursor)
    assert [[n.notification_id for n in p.notifications] for p in (first, second, third)] == [
        ["n4", "n3"],
        ["n2", "n1"],
        ["n0"],
    ]
    assert third.next_cursor is None
    assert first.unread_count == 5


def test_marking_read_with_one_foreign_id_marks_nothing(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.notifications.add(notification("mine"))
        unit.notifications.add(notification("theirs", "u2"))
        with pytest.raises(NotFound):
            unit.notifications.mark_read("u1", ["mine", "theirs"])
        assert unit.notifications.page("u1", True, 10, None).unread_count == 1
        assert unit.notifications.mark_read("u1", ["mine"]) == 1
        assert unit.notifications.mark_read("u1", ["mine"]) == 0


def test_preferences_default_to_on_without_quiet_hours_and_are_kept_as_set(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1")
        unit.preferences.put(NotificationPreferences("u1", False, time(22, 0), time(7, 30)))
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get_many(["u1", "u2"]) == {
            "u1": NotificationPreferences("u1", False, time(22, 0), time(7, 30)),
            "u2": NotificationPreferences("u2"),
        }
        unit.preferences.put(NotificationPreferences("u1", True))
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1", True)
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.preferences.get("u1") == NotificationPreferences("u1")


def test_a_goals_notify_switch_is_stored_and_changed(uow):
    add_user(uow)
    add_goals(uow, replace(goal(), notify=False))
    with uow() as unit:
        assert unit.goals.get("g1").notify is False
        unit.goals.update(replace(unit.goals.get("g1"), notify=True))
        unit.commit()
    with uow() as unit:
        assert unit.goals.get("g1").notify is True


def test_the_goals_to_evaluate_come_zone_by_zone_a_page_of_users_at_a_time(uow):
    for n, zone in enumerate(["Asia/Tokyo", "Europe/Paris", "Europe/Paris", "Europe/Paris", "Europe/Paris"]):
        add_user(uow, f"u{n}", f"user{n}", zone)
    weekly = replace(goal("g1w", "u1", GoalPeriod.WEEKLY), metric=MetricKind.DISTANCE)
    add_goals(
        uow,
        goal("g0", "u0"),
        goal("g1", "u1"),
        weekly,
        goal("g2", "u2", active=False),
        replace(goal("g3", "u3"), notify=False),
        goal("g4", "u4"),
    )
    with uow() as unit:
        assert unit.users.time_zones() == ["Asia/Tokyo", "Europe/Paris"]
        assert unit.users.ids_in_zone("Europe/Paris", "", 3) == ["u1", "u2", "u3"]
        assert unit.users.ids_in_zone("Europe/Paris", "u3", 3) == ["u4"]
        assert unit.goals.zones_with_notified_goals() == ["Asia/Tokyo", "Europe/Paris"]
        first = unit.goals.notified_goals_in_zone("Europe/Paris", "", 1)
        assert sorted(g.goal_id for g in first) == ["g1", "g1w"]
        # Users whose goals are all off or silenced are skipped, not returned as empty pages.
        assert [g.goal_id for g in unit.goals.notified_goals_in_zone("Europe/Paris", "u1", 1)] == ["g4"]
        assert unit.goals.notified_goals_in_zone("Europe/Paris", "u4", 1) == []


def test_users_and_goals_are_fetched_many_at_once(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    add_goals(uow, goal("g1"), goal("g2", "u2"))
    with uow() as unit:
        assert set(unit.users.get_many(["u1", "u2", "nobody"])) == {"u1", "u2"}
        assert unit.users.get_many([]) == {}
        assert {g.user_id for g in unit.goals.get_many(["g1", "g2", "gone"]).values()} == {"u1", "u2"}


def test_stored_nudges_are_counted_per_user_and_local_day(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    june_10, june_11 = DAY, DAY + timedelta(days=1)

    def nudge(notification_id: str, user_id: str, day: date) -> Notification:
        return replace(notification(notification_id, user_id), kind=NotificationKind.BEHIND_GOAL, local_date=day)

    with uow() as unit:
        for each in (nudge("n1", "u1", june_10), nudge("n2", "u1", june_10), nudge("n3", "u2", june_11)):
            unit.notifications.add(each)
        unit.notifications.add(replace(notification("n4"), local_date=june_10))  # another kind
        unit.commit()
    with uow() as unit:
        counts = unit.notifications.count_on_days(
            NotificationKind.BEHIND_GOAL, [("u1", june_10), ("u1", june_11), ("u2", june_11)]
        )
    assert counts == {("u1", june_10): 2, ("u1", june_11): 0, ("u2", june_11): 1}


def test_a_notification_has_one_delivery_however_often_it_is_recorded(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"))
    with uow() as unit:
        unit.deliveries.add(Delivery("n1", "u1", T0 + timedelta(days=1), T0, 5, DeliveryState.DEAD, "x"))
        unit.commit()
    assert delivery_states(uow, notification("n1"))["n1"] == Delivery("n1", "u1", T0, T0)


def test_a_claim_takes_due_pending_deliveries_oldest_first_and_leases_them(uow):
    add_user(uow)
    first, second, later = notification("n1"), notification("n2"), notification("n3")
    stored_with_deliveries(uow, second)
    stored_with_deliveries(uow, first, due=T0 - timedelta(minutes=1))
    stored_with_deliveries(uow, later, due=T0 + timedelta(minutes=1))
    taken = claimed(uow)
    assert [(d.notification_id, d.attempts, d.due_at) for d, _ in taken] == [("n1", 1, LEASE), ("n2", 1, LEASE)]
    assert [n.notification_id for _, n in taken] == ["n1", "n2"]
    assert taken[0][1].title == first.title
    # Leased: nobody else finds them due until the lease ends.
    assert claimed(uow) == []
    assert {d.notification_id for d, _ in claimed(uow, LEASE, limit=5)} == {"n1", "n2"}
    with uow() as unit:
        assert unit.deliveries.next_due() == LEASE + timedelta(seconds=11)


def test_a_claim_can_be_limited_to_named_notifications(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"), notification("n2"))
    assert [d.notification_id for d, _ in claimed(uow, ids=["n2"])] == ["n2"]
    assert claimed(uow, ids=[]) == []
    assert [d.notification_id for d, _ in claimed(uow, limit=1)] == ["n1"]


def test_settling_a_delivery_no_longer_as_claimed_changes_nothing(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"))
    ((overtaken, _),) = claimed(uow)
    ((current, _),) = claimed(uow, LEASE)  # a dispatcher that outlived its lease is overtaken
    with uow() as unit:
        assert not unit.deliveries.settle(replace(overtaken, state=DeliveryState.DELIVERED))
        assert unit.deliveries.settle(replace(current, state=DeliveryState.DELIVERED, last_error="ok"))
        unit.commit()
    settled = delivery_states(uow, notification("n1"))["n1"]
    assert (settled.state, settled.attempts, settled.last_error) == (DeliveryState.DELIVERED, 2, "ok")
    with uow() as unit:
        assert not unit.deliveries.settle(replace(current, state=DeliveryState.DEAD))
        assert unit.deliveries.next_due() is None


def test_dead_deliveries_are_listed_newest_first_and_replayed(uow):
    add_user(uow)
    stored_with_deliveries(uow, notification("n1"), notification("n2"), notification("n3"))
    with uow() as unit:
        for number, (delivery, _) in enumerate(unit.deliveries.claim(T0, LEASE, 10)):
            dead = delivery.notification_id != "n3"
            unit.deliveries.settle(
                replace(
                    delivery,
                    state=DeliveryState.DEAD if dead else DeliveryState.PENDING,
                    updated_at=T0 + timedelta(minutes=number),
                    last_error=f"HTTP 50{number}",
                )
            )
        unit.commit()
    with uow() as unit:
        letters = unit.deliveries.dead(10)
    assert [(d.notification_id, d.last_error, n.notification_id) for d, n in letters] == [
        ("n2", "HTTP 501", "n2"),
        ("n1", "HTTP 500", "n1"),
    ]
    later = T0 + timedelta(hours=1)
    with uow() as unit:
        assert unit.deliveries.replay(["n1", "n3", "nobody"], later) == ["n1"]
        assert set(unit.deliveries.replay(None, later)) == {"n2"}
        unit.commit()
    replayed = delivery_states(uow, notification("n1"))["n1"]
    assert (replayed.state, replayed.attempts, replayed.due_at) == (DeliveryState.PENDING, 0, later)
    with uow() as unit:
        assert unit.deliveries.dead(10) == []


def test_deleting_a_user_deletes_their_deliveries(uow):
    add_user(uow)
    add_user(uow, "u2", "bob")
    stored_with_deliveries(uow, notification("n1"), notification("n2", "u2"))
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    assert list(delivery_states(uow, notification("n1"), notification("n2"))) == ["n2"]


# --- account security ------------------------------------------------------------


def test_login_failures_are_kept_per_username_until_cleared(uow):
    record = LoginFailures("alice", T0, 3, 1, T0 + timedelta(hours=1), T0 + timedelta(minutes=5))
    with uow() as unit:
        assert unit.login_failures.get("alice") is None
        unit.login_failures.put(record)
        unit.login_failures.put(LoginFailures("nobody", T0, 1))  # no such user: counted all the same
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("alice") == record
        assert unit.login_failures.get("nobody") == LoginFailures("nobody", T0, 1)
        unit.login_failures.put(LoginFailures("alice", T0, 4))
        unit.login_failures.clear("nobody")
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("alice") == LoginFailures("alice", T0, 4)
        assert unit.login_failures.get("nobody") is None


def test_address_failures_come_back_newest_first_within_the_span_and_at_most_the_limit(uow):
    seconds = [0, 10, 20, 30, 40]
    with uow() as unit:
        for second in seconds:
            unit.address_failures.add("192.0.2.1", T0 + timedelta(seconds=second), T0 - timedelta(minutes=1))
        unit.address_failures.add("2001:db8::/64", T0 + timedelta(seconds=15), T0 - timedelta(minutes=1))
        unit.commit()
    with uow() as unit:
        recent = unit.address_failures.recent("192.0.2.1", T0, T0 + timedelta(seconds=40), 3)
        assert recent == [T0 + timedelta(seconds=s) for s in (40, 30, 20)]
        assert unit.address_failures.recent("192.0.2.1", T0 + timedelta(seconds=5), T0 + timedelta(seconds=25), 9) == [
            T0 + timedelta(seconds=20),
            T0 + timedelta(seconds=10),
        ]
        assert unit.address_failures.recent("2001:db8::/64", T0, T0 + timedelta(minutes=1), 9) == [
            T0 + timedelta(seconds=15)
        ]
        assert unit.address_failures.recent("192.0.2.2", T0 - timedelta(days=1), T0 + timedelta(days=1), 9) == []


def test_recording_an_address_failure_drops_that_addresss_older_ones_and_forget_before_everyones(uow):
    with uow() as unit:
        for address in ("192.0.2.1", "192.0.2.2"):
            unit.address_failures.add(address, T0, T0 - timedelta(minutes=1))
        unit.address_failures.add("192.0.2.1", T0 + timedelta(minutes=2), T0 + timedelta(minutes=1))
        unit.commit()
    everything = (T0 - timedelta(days=1), T0 + timedelta(days=1), 9)
    with uow() as unit:
        assert unit.address_failures.recent("192.0.2.1", *everything) == [T0 + timedelta(minutes=2)]
        assert unit.address_failures.recent("192.0.2.2", *everything) == [T0]
        assert unit.address_failures.forget_before(T0 + timedelta(minutes=1)) == 1
        unit.commit()
    with uow() as unit:
        assert unit.address_failures.recent("192.0.2.2", *everything) == []
        assert unit.address_failures.recent("192.0.2.1", *everything) == [T0 + timedelta(minutes=2)]


def test_login_failures_last_seen_before_a_moment_are_forgotten(uow):
    with uow() as unit:
        unit.login_failures.put(LoginFailures("old", T0, 1, last_failure=T0 - timedelta(days=2)))
        unit.login_failures.put(LoginFailures("recent", T0, 1, last_failure=T0))
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.forget_before(T0 - timedelta(days=1)) == 1
        unit.commit()
    with uow() as unit:
        assert unit.login_failures.get("old") is None
        assert unit.login_failures.get("recent") is not None


def test_evaluation_work_is_claimed_by_one_evaluator_while_its_lease_runs(uow):
    assert claim_work(uow, "e1", T0) is True
    assert claim_work(uow, "e2", T0 + timedelta(minutes=1)) is False
    # Renewing: the holder claims again and its lease runs five more minutes.
    assert claim_work(uow, "e1", T0 + timedelta(minutes=4)) is True
    assert claim_work(uow, "e2", T0 + timedelta(minutes=8)) is False
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + timedelta(minutes=8), 10) == []


def test_work_left_unfinished_is_abandoned_once_its_lease_ran_out_and_another_may_take_it(uow):
    claim_work(uow, "e1", T0)
    claim_work(uow, "e1", T0 - timedelta(minutes=1), key="report|Europe/Paris|2026-06-08|08:00")
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + WORK_LEASE, 10) == ["report|Europe/Paris|2026-06-08|08:00"]
        assert unit.evaluation_claims.abandoned(T0 + WORK_LEASE + timedelta(seconds=1), 1) == [
            "report|Europe/Paris|2026-06-08|08:00"
        ]
    assert claim_work(uow, "e2", T0 + WORK_LEASE + timedelta(seconds=1)) is True
    assert claim_work(uow, "e1", T0 + WORK_LEASE + timedelta(seconds=2)) is False


def test_finished_work_is_never_claimed_again_nor_abandoned(uow):
    claim_work(uow, "e1", T0)
    with uow() as unit:
        unit.evaluation_claims.finish(SLOT_KEY, "e2", T0)  # not the holder: changes nothing
        unit.commit()
    assert claim_work(uow, "e1", T0) is True
    with uow() as unit:
        unit.evaluation_claims.finish(SLOT_KEY, "e1", T0)
        unit.commit()
    assert claim_work(uow, "e1", T0) is False
    assert claim_work(uow, "e2", T0 + timedelta(days=1)) is False
    with uow() as unit:
        assert unit.evaluation_claims.abandoned(T0 + timedelta(days=1), 10) == []


def test_a_claim_not_committed_holds_nothing(uow):
    with uow() as unit:
        assert unit.evaluation_claims.claim(SLOT_KEY, "e1", T0, T0 + WORK_LEASE) is True
    assert claim_work(uow, "e2", T0) is True


def test_claims_whose_lease_ended_before_a_moment_are_forgotten(uow):
    claim_work(uow, "e1", T0 - timedelta(days=3))
    claim_work(uow, "e1", T0, key="slot|UTC|2026-06-10|16:00")
    with uow() as unit:
        assert unit.evaluation_claims.forget_before(T0 - timedelta(days=2)) == 1
        unit.commit()
    assert claim_work(uow, "e2", T0 - timedelta(days=3)) is True
    assert claim_work(uow, "e2", T0, key="slot|UTC|2026-06-10|16:00") is False


def test_login_failures_not_committed_are_discarded(uow):
    with uow() as unit:
        unit.login_failures.put(LoginFailures("alice", T0, 1))
    with uow() as unit:
        assert unit.login_failures.get("alice") is None


def test_expiring_passwords_are_found_by_zone_and_range_a_page_at_a_time(uow):
    expiries = {"u1": T0, "u2": T0 + timedelta(hours=23), "u3": T0 + timedelta(days=1), "u4": T0}
    with uow() as unit:
        for user_id, expires in expiries.items():
            zone = "Asia/Tokyo" if user_id == "u4" else "Europe/Paris"
            new, _ = user(user_id, f"name-{user_id}", zone)
            unit.users.add(new, Credentials(user_id, b"hash", T0 - timedelta(days=90), expires))
        new, _ = user("u5", "never", "Europe/Paris")
        unit.users.add(new, Credentials("u5", b"hash", T0, None))
        unit.commit()
    end = T0 + timedelta(days=1)
    with uow() as unit:
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "", 10) == [("u1", T0), ("u2", expiries["u2"])]
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "", 1) == [("u1", T0)]
        assert unit.users.expiring_in_zone("Europe/Paris", T0, end, "u1", 10) == [("u2", expiries["u2"])]
        assert unit.users.expiring_in_zone("Asia/Tokyo", T0, end, "", 10) == [("u4", T0)]


def test_a_provider_login_is_linked_to_one_account_and_found_by_issuer_and_subject(uow):
    add_user(uow, "u1", "alice")
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.identities.add(ExternalIdentity("https://other.example.test", "sub-1", "u2", T0))
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") == ExternalIdentity(ISSUER, "sub-1", "u1", T0)
        assert unit.identities.get("https://other.example.test", "sub-1").user_id == "u2"
        assert unit.identities.get(ISSUER, "sub-2") is None
        assert unit.identities.get(ISSUER + "/", "sub-1") is None  # issuers compare exactly
        assert unit.identities.for_user("u1") == [ExternalIdentity(ISSUER, "sub-1", "u1", T0)]


def test_linking_a_linked_provider_login_again_is_refused_and_the_unit_stays_usable(uow):
    add_user(uow, "u1", "alice")
    add_user(uow, "u2", "bob")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.commit()
    with uow() as unit:
        with pytest.raises(AlreadyExists):
            unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u2", T0))
        unit.identities.add(ExternalIdentity(ISSUER, "sub-2", "u2", T0))
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1").user_id == "u1"
        assert unit.identities.get(ISSUER, "sub-2").user_id == "u2"


def test_an_account_made_by_single_sign_on_has_no_password(uow):
    with uow() as unit:
        unit.users.add(User("u1", "alice", Profile(), T0), None)
        unit.commit()
    with uow() as unit:
        assert unit.users.get("u1").username == "alice"
        assert unit.users.get_credentials("u1") is None


def test_deleting_a_user_removes_their_provider_logins(uow):
    add_user(uow, "u1", "alice")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        unit.commit()
    with uow() as unit:
        unit.users.delete("u1")
        unit.commit()
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") is None
        assert unit.identities.for_user("u1") == []


def test_a_provider_login_is_not_linked_without_committing(uow):
    add_user(uow, "u1", "alice")
    with uow() as unit:
        unit.identities.add(ExternalIdentity(ISSUER, "sub-1", "u1", T0))
        assert unit.identities.use_nonce(ISSUER, "n1", T0 + timedelta(minutes=5), T0)
    with uow() as unit:
        assert unit.identities.get(ISSUER, "sub-1") is None
        assert unit.identities.use_nonce(ISSUER, "n1", T0 + timedelta(minutes=5), T0)


def test_a_nonce_is_accepted_once_per_issuer_until_its_token_expires(uow):
    until = T0 + timedelta(minutes=5)
    with uow() as unit:
        assert unit.identities.use_nonce(ISSUER, "n1", until, T0)
        assert not unit.identities.use_nonce(ISSUER, "n1", until, T0)
        assert unit.identities.use_nonce("https://other.example.test", "n1", until, T0)
        unit.commit()
    with uow() as unit:
        assert not unit.identities.use_nonce(ISSUER, "n1", until, T0 + timedelta(minutes=4))
        # Past its token's expiry the record is forgotten: the token itself is refused as expired by then.
        assert unit.identities.use_nonce(ISSUER, "n1", until + timedelta(minutes=5), until)
        unit.commit()
