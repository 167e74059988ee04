"""Checking batches from a device, publishing them once, and viewing metrics."""

from datetime import UTC, date, datetime

import pytest

from fittrack.core.domain.aggregation import DaySummary
from fittrack.core.domain.calendar import RangePreset
from fittrack.core.domain.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from fittrack.core.domain.metrics import BatchLimits, MetricKind
from fittrack.core.ports import PublishOutcome
from fittrack.core.services.metrics import IngestLimits, Metrics, RawBatch
from tests.unit.fakes import PASSWORD, FakeApp, fake_app

STEPS, HEART = MetricKind.STEPS, MetricKind.HEART_RATE
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
HALF_PAST_ELEVEN_UTC = int(datetime(2026, 6, 9, 23, 30, tzinfo=UTC).timestamp())


@pytest.fixture
def app() -> FakeApp:
    return fake_app(NOW)


def test_a_batch_is_placed_on_the_local_days_of_the_users_time_zone(app, alice, bob):
    readings = [(STEPS, HALF_PAST_ELEVEN_UTC, 10)]
    in_paris = app.metrics.open_ingest(alice).check(RawBatch("watch", 1, readings))
    in_new_york = app.metrics.open_ingest(bob).check(RawBatch("watch", 1, readings))
    assert in_paris.readings[0].local_date == date(2026, 6, 10)
    assert in_new_york.readings[0].local_date == date(2026, 6, 9)


def test_an_accepted_batch_carries_user_source_sequence_and_minute_aligned_readings(app, alice):
    accepted = app.metrics.open_ingest(alice).check(RawBatch("watch-7", 42, [(STEPS, HALF_PAST_ELEVEN_UTC + 31, 10)]))
    assert (accepted.user_id, accepted.source, accepted.sequence) == (alice.user_id, "watch-7", 42)
    assert accepted.readings[0].minute * 60 == HALF_PAST_ELEVEN_UTC


def test_a_batch_without_a_device_is_stored_as_manual_entries(app, alice):
    assert app.metrics.open_ingest(alice).check(RawBatch("", 0, [(STEPS, HALF_PAST_ELEVEN_UTC, 10)])).source == "manual"


def test_one_bad_reading_rejects_the_batch_and_the_error_names_the_device_the_sequence_and_the_reading(app, alice):
    readings = [(STEPS, HALF_PAST_ELEVEN_UTC, 10), (STEPS, HALF_PAST_ELEVEN_UTC + 60, 5000)]
    with pytest.raises(InvalidArgument) as refused:
        app.metrics.open_ingest(alice).check(RawBatch("watch-1", 7, readings), in_upload=3)
    assert str(refused.value) == (
        "batch from device watch-1, sequence 7, reading 2 of 2: "
        "5,000 steps is impossible for steps in one minute; expected 0 to 1,000"
    )


def test_a_bad_batch_without_a_sequence_is_named_by_its_place_in_the_upload(app, alice):
    readings = [(STEPS, HALF_PAST_ELEVEN_UTC, -1)]
    with pytest.raises(InvalidArgument, match=r"^batch 3 of the upload \(from device watch-1\), reading 1 of 1: "):
        app.metrics.open_ingest(alice).check(RawBatch("watch-1", 0, readings), in_upload=3)
    with pytest.raises(InvalidArgument, match=r"^batch of manual entries, reading 1 of 1: "):
        app.metrics.open_ingest(alice).check(RawBatch("", 0, readings))


def test_an_empty_batch_is_rejected(app, alice):
    with pytest.raises(InvalidArgument, match="at least one reading"):
        app.metrics.open_ingest(alice).check(RawBatch("watch", 1, []))


def test_a_batch_over_the_size_limit_is_refused_with_its_position(app, alice):
    metrics = Metrics(app.database, app.store, app.bus, app.clock, IngestLimits(BatchLimits(2), 10))
    readings = [(STEPS, HALF_PAST_ELEVEN_UTC + 60 * i, 10) for i in range(3)]
    with pytest.raises(
        ResourceExhausted, match="^batch from device watch, sequence 1: a batch holds 3 readings; at most 2"
    ):
        metrics.open_ingest(alice).check(RawBatch("watch", 1, readings), in_upload=1)


def test_an_upload_over_its_reading_limit_is_refused(app, alice):
    metrics = Metrics(app.database, app.store, app.bus, app.clock, IngestLimits(BatchLimits(2), 10))
    ingest = metrics.open_ingest(alice)
    ingest.check_upload_size(10)
    with pytest.raises(ResourceExhausted, match="at most 10 readings"):
        ingest.check_upload_size(11)


def test_a_device_id_over_64_characters_is_rejected(app, alice):
    with pytest.raises(InvalidArgument, match="device_id"):
        app.metrics.open_ingest(alice).check(RawBatch("w" * 65, 1, [(STEPS, HALF_PAST_ELEVEN_UTC, 10)]))


def check(app, principal, device_id: str, sequence: int):
    return app.metrics.open_ingest(principal).check(RawBatch(device_id, sequence, [(STEPS, HALF_PAST_ELEVEN_UTC, 1)]))


def test_a_batch_sent_again_with_the_same_sequence_is_a_duplicate(app, alice):
    ingest = app.metrics.open_ingest(alice)
    first = check(app, alice, "watch", 1)
    assert ingest.publish([first]) == [PublishOutcome.ACCEPTED]
    assert ingest.publish([first, check(app, alice, "watch", 2)]) == [PublishOutcome.DUPLICATE, PublishOutcome.ACCEPTED]
    assert len(app.bus.drain()) == 2


def test_the_resume_point_is_tracked_per_device(app, alice):
    ingest = app.metrics.open_ingest(alice)
    ingest.publish([check(app, alice, "watch", 5), check(app, alice, "phone", 2)])
    assert ingest.resume_point("watch").highest == 5
    assert ingest.resume_point("watch").missing() == [1, 2, 3, 4]
    assert ingest.resume_point("phone").highest == 2
    assert ingest.resume_point("ring").highest == 0


def test_the_same_device_name_of_two_users_keeps_two_cursors(app, alice, bob):
    app.metrics.open_ingest(alice).publish([check(app, alice, "watch", 5)])
    assert app.metrics.open_ingest(bob).publish([check(app, bob, "watch", 1)]) == [PublishOutcome.ACCEPTED]


def test_batches_without_a_sequence_are_never_treated_as_duplicates(app, alice):
    ingest = app.metrics.open_ingest(alice)
    batch = check(app, alice, "", 0)
    assert ingest.publish([batch, batch]) == [PublishOutcome.ACCEPTED, PublishOutcome.ACCEPTED]


def test_an_ingest_stream_cannot_be_opened_for_a_deleted_account(app, alice):
    app.accounts.delete_account(alice, PASSWORD)
    with pytest.raises(Unauthenticated, match="no longer exists"):
        app.metrics.open_ingest(alice)


# --- viewing metrics --------------------------------------------------------------


def test_viewing_today_shows_the_days_total(app, alice):
    app.store.put_days(alice.user_id, STEPS, DaySummary(date(2026, 6, 10), 4321, 1, 100, 80))
    view = app.metrics.view(alice, STEPS, RangePreset.TODAY, None)
    assert (view.total, view.days_with_data, len(view.days)) == (4321, 1, 1)


def test_viewing_the_last_7_days_fills_days_without_data_with_zero(app, alice):
    app.store.put_days(
        alice.user_id,
        STEPS,
        DaySummary(date(2026, 6, 4), 1000, 1, 100, 80),
        DaySummary(date(2026, 6, 3), 9999, 1, 100, 80),
    )
    view = app.metrics.view(alice, STEPS, RangePreset.LAST_7_DAYS, None)
    assert [d.value for d in view.days] == [1000, 0, 0, 0, 0, 0, 0]
    assert view.average == 1000


def test_viewing_an_unknown_metric_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="unknown metric kind 0"):
        app.metrics.view(alice, 0, RangePreset.TODAY, None)


def test_an_uploaded_reading_appears_in_the_view(app, alice):
    app.upload(alice, [(HEART, int(NOW.timestamp()) - 120, 64), (HEART, int(NOW.timestamp()) - 60, 80)])
    view = app.metrics.view(alice, HEART, RangePreset.TODAY, None)
    assert (view.average, view.min, view.max) == (72, 64, 80)
