"""The embedded reading bus and its fake keep the same promises: each batch sequence once per device, gaps reported."""

from fittrack.core.domain.metrics import AcceptedBatch
from fittrack.core.domain.sequences import DeviceCursor
from fittrack.core.ports import PublishOutcome
from tests.contract.builders import placed


def test_the_bus_accepts_each_sequence_once_per_device_even_out_of_order(bus):
    def batch(sequence: int, source: str = "watch") -> AcceptedBatch:
        return AcceptedBatch("u1", source, sequence, (placed(100, 1),))

    assert bus.publish([batch(1), batch(1), batch(3), batch(2), batch(2), batch(1, "phone")]) == [
        PublishOutcome.ACCEPTED,
        PublishOutcome.DUPLICATE,
        PublishOutcome.ACCEPTED,
        PublishOutcome.ACCEPTED,
        PublishOutcome.DUPLICATE,
        PublishOutcome.ACCEPTED,
    ]
    assert bus.cursor("u1", "watch") == DeviceCursor(3, 0b11)
    assert (bus.cursor("u1", "phone").highest, bus.cursor("u2", "watch").highest) == (1, 0)
    assert bus.publish([batch(0), batch(0)]) == [PublishOutcome.ACCEPTED, PublishOutcome.ACCEPTED]


def test_the_bus_reports_the_gaps_below_the_highest_durable_sequence(bus):
    def batch(sequence: int) -> AcceptedBatch:
        return AcceptedBatch("u1", "watch", sequence, (placed(100, 1),))

    bus.publish([batch(1), batch(2), batch(5), batch(7)])
    cursor = bus.cursor("u1", "watch")
    assert (cursor.highest, cursor.missing()) == (7, [3, 4, 6])


def test_the_bus_resolves_many_submissions_made_at_once_each_with_its_own_outcomes(bus):
    def batch(user_id: str, sequence: int) -> AcceptedBatch:
        return AcceptedBatch(user_id, "watch", sequence, (placed(100, 1),))

    futures = [bus.submit([batch(f"u{n % 7}", n // 7 + 1)]) for n in range(700)]
    futures.append(bus.submit([batch("u1", 90), batch("u1", 101)]))
    outcomes = [future.result(timeout=30) for future in futures]
    assert outcomes[:700] == [[PublishOutcome.ACCEPTED]] * 700
    assert outcomes[700] == [PublishOutcome.DUPLICATE, PublishOutcome.ACCEPTED]
    assert bus.cursor("u3", "watch") == DeviceCursor(100, (1 << 63) - 1)
