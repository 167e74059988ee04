"""Random journeys through the fake and the SQLite metric store: each minute counts once, on the day it first
came with, and both stores find the same days and totals. The Mongo store runs the same journeys in
tests/integration/test_mongo_metric_store.py.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from fittrack.core.adapters.sqlite import SqliteDatabase
from fittrack.core.adapters.sqlite_metrics import SqliteMetricStore
from tests.unit.fakes import FakeMetricStore
from tests.unit.journeys import day_totals, expected, held, journeys, travel

users = (f"traveller-{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    db = SqliteDatabase(tmp_path_factory.mktemp("journeys") / "metrics.sqlite3")
    db.migrate()
    yield SqliteMetricStore(db)
    db.close()


# The SQLite file is shared by every example; each journey is another user's, so none sees another's minutes.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=journeys())
def test_every_minute_counts_once_on_the_day_it_first_came_with_in_the_fake_and_in_sqlite(sqlite_store, writes):
    touched, minutes = expected(writes)
    fake, user_id = FakeMetricStore(), next(users)

    assert travel(fake, user_id, writes) == touched
    assert travel(sqlite_store, user_id, writes) == touched
    assert held(fake, user_id) == held(sqlite_store, user_id) == minutes
    assert day_totals(held(fake, user_id)) == day_totals(held(sqlite_store, user_id)) == day_totals(minutes)
