"""The fakes' own behaviour; the checks the fakes share with the real adapters are in tests/contract."""

from datetime import timedelta

from tests.contract.builders import T0, user
from tests.unit.fakes import FakeAccountsDatabase, FakeClock, FakeHasher


def test_the_fake_unit_of_work_says_whether_it_committed():
    database = FakeAccountsDatabase()
    with database() as unit:
        unit.users.add(*user())
    assert not unit.committed
    with database() as unit:
        unit.users.add(*user())
        unit.commit()
    assert unit.committed
    assert database.commits == 1


def test_the_fake_hasher_rejects_a_wrong_password():
    hasher = FakeHasher()
    stored = hasher.hash("correct horse")
    assert hasher.verify("correct horse", stored)
    assert not hasher.verify("correct hors", stored)
    assert not hasher.verify("correct horse", b"correct horse")


def test_the_fake_clock_stands_still_until_moved():
    clock = FakeClock(T0)
    assert clock() == clock() == T0
    clock.advance(timedelta(hours=1))
    assert clock() == T0 + timedelta(hours=1)
