"""Readings in through both streaming RPCs, metrics out through ViewMetric."""

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.type.date_pb2 import Date

from fittrack.generated.v1 import account_pb2, common_pb2, metric_pb2
from tests.support import batch, eventually, local_midnight, minute_start, reading, rpc_error, upload, view_today

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS
HEART = common_pb2.METRIC_KIND_HEART_RATE
Ack = metric_pb2.BatchAck


def today_total(stubs, user, metric=STEPS):
    return view_today(stubs, user, metric).total


def in_alices_today(clock):
    """Ten minutes into alice's local today; the tests count back from there, at most ten minutes."""
    return local_midnight(clock, "Europe/Paris") + 600


def test_uploaded_readings_show_up_in_todays_total(stubs, alice, clock):
    start = in_alices_today(clock)
    summary = upload(
        stubs,
        alice,
        batch([reading(STEPS, start - 60 * i, 100) for i in range(3)], sequence=1),
        batch([reading(STEPS, start - 60 * i, 50) for i in range(3, 5)], sequence=2),
    )
    assert (summary.batches_accepted, summary.readings_accepted) == (2, 5)
    assert summary.first_reading_time.seconds == start - 240
    assert summary.last_reading_time.seconds == start
    view = eventually(lambda: view_today(stubs, alice, STEPS), lambda v: v.total == 400)
    assert view.unit == "steps"
    assert view.days[-1].minutes_with_data == 5


def test_a_resent_upload_is_not_counted_twice(stubs, alice, clock):
    start = in_alices_today(clock)
    first = batch([reading(STEPS, start, 120)], sequence=7)
    upload(stubs, alice, first)
    again = upload(stubs, alice, first)
    assert (again.batches_accepted, again.batches_duplicate) == (0, 1)
    # Even without sequence numbers, a minute sent twice replaces itself.
    upload(stubs, alice, batch([reading(STEPS, start - 60, 30)]))
    upload(stubs, alice, batch([reading(STEPS, start - 60, 30)]))
    eventually(lambda: today_total(stubs, alice), lambda total: total == 150)


def test_a_watch_and_a_phone_counting_the_same_minute_count_once(stubs, alice, clock):
    start = in_alices_today(clock)
    upload(stubs, alice, batch([reading(STEPS, start, 80)], device_id="phone"))
    upload(stubs, alice, batch([reading(STEPS, start, 95)], device_id="watch"))
    eventually(lambda: today_total(stubs, alice), lambda total: total == 95)


def test_heart_rate_is_shown_as_minimum_average_and_maximum(stubs, alice, clock):
    start = in_alices_today(clock)
    upload(stubs, alice, batch([reading(HEART, start - 60 * i, bpm) for i, bpm in enumerate([60, 90, 120])]))
    view = eventually(lambda: view_today(stubs, alice, HEART), lambda v: v.days_with_data == 1)
    assert (view.min, view.average, view.max, view.total) == (60, 90, 120, 0)
    assert view.unit == "bpm"


def test_an_upload_with_one_bad_batch_is_refused_whole_naming_its_device_sequence_and_reading(stubs, alice, clock):
    start = in_alices_today(clock)
    error = rpc_error(
        lambda: upload(
            stubs,
            alice,
            batch([reading(STEPS, start, 100)], sequence=1),
            batch([reading(STEPS, start - 60, 5000)], sequence=2),
        )
    )
    assert error.code() == Code.INVALID_ARGUMENT
    assert error.details() == (
        "batch from device watch-1, sequence 2, reading 1 of 1: "
        "5,000 steps is impossible for steps in one minute; expected 0 to 1,000"
    )
    # Nothing of it was stored: sequence 1 is still new, and the total stays at zero.
    summary = upload(stubs, alice, batch([reading(STEPS, start - 120, 1)], sequence=1))
    assert summary.batches_accepted == 1
    eventually(lambda: today_total(stubs, alice), lambda total: total == 1)


@pytest.mark.parametrize(
    ("metric", "value", "offset", "complaint"),
    [
        (STEPS, -1, timedelta(0), "negative"),
        (STEPS, 1001, timedelta(0), "impossible"),
        (HEART, 19, timedelta(0), "impossible"),
        (HEART, 251, timedelta(0), "impossible"),
        (common_pb2.METRIC_KIND_CALORIES_BURNED, float("nan"), timedelta(0), "finite"),
        (STEPS, 10, timedelta(hours=25), "future"),
        (0, 10, timedelta(0), "unknown metric kind"),
        (42, 10, timedelta(0), "unknown metric kind"),
    ],
)
def test_impossible_readings_are_refused_with_a_reason(stubs, alice, clock, metric, value, offset, complaint):
    when = minute_start(clock() + offset)
    error = rpc_error(lambda: upload(stubs, alice, batch([reading(metric, when, value)])))
    assert error.code() == Code.INVALID_ARGUMENT
    assert complaint in error.details()


def test_a_reading_within_a_day_in_the_future_is_accepted(stubs, alice, clock):
    when = minute_start(clock() + timedelta(hours=23))
    assert upload(stubs, alice, batch([reading(STEPS, when, 10)])).readings_accepted == 1


def test_an_empty_upload_is_refused(stubs, alice):
    error = rpc_error(lambda: stubs.metrics.UploadReadings(iter([]), metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "no batches" in error.details()


def test_an_empty_batch_and_an_oversized_batch_are_refused(stubs, alice, clock):
    assert rpc_error(lambda: upload(stubs, alice, batch([]))).code() == Code.INVALID_ARGUMENT
    when = minute_start(clock() - timedelta(days=2))
    too_many = batch([reading(STEPS, when - 60 * i, 1) for i in range(1001)])
    error = rpc_error(lambda: upload(stubs, alice, too_many))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert "1,001 readings; at most 1,000" in error.details()


def test_sync_acknowledges_every_batch_and_rejects_a_bad_one_without_closing(stubs, alice, clock):
    start = in_alices_today(clock)
    requests = [
        metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id="watch-1")),
        metric_pb2.SyncReadingsRequest(batch=batch([reading(STEPS, start, 40)], sequence=1)),
        metric_pb2.SyncReadingsRequest(batch=batch([reading(HEART, start, 400)], sequence=2)),
        metric_pb2.SyncReadingsRequest(batch=batch([reading(STEPS, start - 60, 60)], sequence=2)),
        metric_pb2.SyncReadingsRequest(batch=batch([reading(STEPS, start - 60, 60)], sequence=2)),
    ]
    responses = list(stubs.metrics.SyncReadings(iter(requests), metadata=alice.auth))
    assert responses[0].welcome.last_durable_sequence == 0
    acks = [r.ack for r in responses[1:]]
    assert [a.status for a in acks] == [
        Ack.STATUS_ACCEPTED,
        Ack.STATUS_REJECTED,
        Ack.STATUS_ACCEPTED,
        Ack.STATUS_DUPLICATE,
    ]
    assert [a.sequence for a in acks] == [1, 2, 2, 2]
    assert acks[1].reason == (
        "batch from device watch-1, sequence 2, reading 1 of 1: 400 bpm is impossible for heart rate in one minute; "
        "expected 20 to 250"
    )
    eventually(lambda: today_total(stubs, alice), lambda total: total == 100)


def test_a_reconnecting_device_learns_where_to_resume(stubs, alice, clock):
    start = in_alices_today(clock)
    first = [
        metric_pb2.SyncReadingsRequest(batch=batch([reading(STEPS, start - 60 * s, 10)], sequence=s)) for s in (1, 2, 3)
    ]
    list(stubs.metrics.SyncReadings(iter(first), metadata=alice.auth))
    hello = metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id="watch-1"))
    (welcome,) = list(stubs.metrics.SyncReadings(iter([hello]), metadata=alice.auth))
    assert welcome.welcome.last_durable_sequence == 3
    other = metric_pb2.SyncReadingsRequest(hello=metric_pb2.SyncHello(device_id="another-watch"))
    assert list(stubs.metrics.SyncReadings(iter([other]), metadata=alice.auth))[0].welcome.last_durable_sequence == 0


def test_readings_land_on_the_users_local_day(stubs, alice, bob, clock):
    # 23:30 UTC yesterday is already today in Paris (alice) and still yesterday in New York (bob).
    today_utc = clock().date()
    late_evening = datetime(today_utc.year, today_utc.month, today_utc.day, tzinfo=UTC) - timedelta(minutes=30)
    for user in (alice, bob):
        upload(stubs, user, batch([reading(STEPS, int(late_evening.timestamp()), 77)]))
    yesterday = today_utc - timedelta(days=1)

    def day_values(user):
        request = metric_pb2.ViewMetricRequest(
            metric=STEPS,
            dates=common_pb2.DateRange(
                start=Date(year=yesterday.year, month=yesterday.month, day=yesterday.day),
                end=Date(year=today_utc.year, month=today_utc.month, day=today_utc.day),
            ),
        )
        return [d.value for d in stubs.metrics.ViewMetric(request, metadata=user.auth).days]

    assert eventually(lambda: day_values(alice), lambda v: v == [0, 77]) == [0, 77]
    assert eventually(lambda: day_values(bob), lambda v: v == [77, 0]) == [77, 0]


def test_a_user_never_sees_another_users_readings(stubs, alice, bob, clock):
    start = in_alices_today(clock)
    upload(stubs, alice, batch([reading(STEPS, start, 500)]))
    eventually(lambda: today_total(stubs, alice), lambda total: total == 500)
    assert view_today(stubs, bob, STEPS).total == 0


def test_the_last_seven_and_thirty_days_end_today(stubs, alice, clock):
    for preset, length in ((common_pb2.RANGE_PRESET_LAST_7_DAYS, 7), (common_pb2.RANGE_PRESET_LAST_30_DAYS, 30)):
        view = stubs.metrics.ViewMetric(metric_pb2.ViewMetricRequest(metric=STEPS, preset=preset), metadata=alice.auth)
        assert len(view.days) == length
        assert view.days[-1].date == view.end


def test_averages_count_only_days_with_data(stubs, alice, clock):
    now = clock()
    upload(
        stubs,
        alice,
        batch([reading(STEPS, minute_start(now - timedelta(days=2)), 300)]),
        batch([reading(STEPS, minute_start(now - timedelta(days=4)), 100)]),
    )
    request = metric_pb2.ViewMetricRequest(metric=STEPS, preset=common_pb2.RANGE_PRESET_LAST_7_DAYS)
    view = eventually(lambda: stubs.metrics.ViewMetric(request, metadata=alice.auth), lambda v: v.days_with_data == 2)
    assert (view.total, view.average) == (400, 200)


@pytest.mark.parametrize(
    ("start", "end", "complaint"),
    [
        (Date(year=2026, month=1, day=1), Date(year=2026, month=2, day=1), "at most 31"),
        (Date(year=2026, month=3, day=5), Date(year=2026, month=3, day=1), "before it starts"),
        (Date(year=2026, month=2, day=30), Date(year=2026, month=3, day=1), "not a calendar date"),
    ],
)
def test_a_bad_date_range_is_refused(stubs, alice, start, end, complaint):
    request = metric_pb2.ViewMetricRequest(metric=STEPS, dates=common_pb2.DateRange(start=start, end=end))
    error = rpc_error(lambda: stubs.metrics.ViewMetric(request, metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert complaint in error.details()


def test_a_view_needs_a_known_metric_and_a_range(stubs, alice):
    unknown = metric_pb2.ViewMetricRequest(metric=99, preset=common_pb2.RANGE_PRESET_TODAY)
    assert rpc_error(lambda: stubs.metrics.ViewMetric(unknown, metadata=alice.auth)).code() == Code.INVALID_ARGUMENT
    no_range = metric_pb2.ViewMetricRequest(metric=STEPS)
    error = rpc_error(lambda: stubs.metrics.ViewMetric(no_range, metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "range" in error.details()


def test_a_minute_counted_before_a_move_is_not_counted_again_by_another_device_after_it(stubs, alice, clock):
    # 02:00 UTC two days ago: 03:00 that day in Paris, 21:00 the day before in New York.
    day = clock().date() - timedelta(days=2)
    instant = int(datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC).timestamp())
    upload(stubs, alice, batch([reading(STEPS, instant, 200)], device_id="watch"))
    move = account_pb2.UpdateProfileRequest(profile=account_pb2.ProfileFields(time_zone="America/New_York"))
    stubs.accounts.UpdateProfile(move, metadata=alice.auth)
    upload(stubs, alice, batch([reading(STEPS, instant, 300)], device_id="phone"))
    before = day - timedelta(days=1)
    request = metric_pb2.ViewMetricRequest(
        metric=STEPS,
        dates=common_pb2.DateRange(
            start=Date(year=before.year, month=before.month, day=before.day),
            end=Date(year=day.year, month=day.month, day=day.day),
        ),
    )
    view = eventually(lambda: stubs.metrics.ViewMetric(request, metadata=alice.auth), lambda v: v.total == 300)
    assert [d.value for d in view.days] == [0, 300]
