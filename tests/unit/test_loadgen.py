"""The load generator's pacing and its readings, without a server."""

import asyncio
from collections import Counter

from fittrack.clients.loadgen import (
    CALORIES,
    DISTANCE,
    HEART_RATE,
    STEPS,
    LoadFigures,
    LoadPlan,
    LoadSource,
    batch_interval,
    due_time,
    figures_of,
    paced_batch,
    refused_first_stream,
    split_readings,
)
from fittrack.clients.sync import DeviceStats

FIRST_MINUTE = 1_795_000_000 // 60 * 60
TICK = 0.002


def test_each_device_sends_a_batch_as_often_as_its_share_of_the_rate_needs():
    # 10 devices of 100-reading batches offering 2,000 readings/s: each device sends 2 batches a second.
    assert batch_interval(2_000, 10, 100) == 0.5
    assert batch_interval(0, 10, 100) == 0.0


def test_batches_fall_due_on_a_fixed_schedule_with_the_devices_spread_over_one_interval():
    due = [[due_time(100.0, 0.5, device, 4, number) for number in range(3)] for device in range(4)]

    assert due[0] == [100.0, 100.5, 101.0]
    assert [times[0] for times in due] == [100.0, 100.125, 100.25, 100.375]
    # Over any whole interval the fleet sends one batch per device: the offered rate is the target.
    in_first_second = sum(1 for times in due for t in times if 100.0 <= t < 101.0)
    assert in_first_second * 100 == 4 * 100 * 2


def test_a_total_is_shared_out_as_evenly_as_possible():
    assert split_readings(10, 3) == [4, 3, 3]
    assert split_readings(2, 4) == [1, 1, 0, 0]
    assert sum(split_readings(1_000_001, 7)) == 1_000_001


async def drain(source: LoadSource) -> list:
    made = []
    while (batch := await source()) is not None:
        made.append(batch)
    return made


def batches_from(source: LoadSource) -> list:
    return asyncio.run(drain(source))


def test_a_device_with_a_budget_sends_full_batches_then_the_rest_then_stops():
    plan = LoadPlan(devices=1, batch=100, readings=250)
    made = batches_from(LoadSource(plan, 0, start=0.0, deadline=None, budget=250, first_minute=FIRST_MINUTE))

    assert [len(batch) for batch in made] == [100, 100, 50]


def test_load_readings_are_plausible_distinct_minutes_going_back_from_the_first():
    plan = LoadPlan(devices=1, batch=100, readings=400)
    readings = [r for batch in batches_from(LoadSource(plan, 0, 0.0, None, 400, FIRST_MINUTE)) for r in batch]
    limits = {STEPS: (0, 1000), CALORIES: (0, 100), HEART_RATE: (20, 250), DISTANCE: (0, 1500)}

    assert Counter(metric for metric, _, _ in readings) == {STEPS: 100, CALORIES: 100, HEART_RATE: 100, DISTANCE: 100}
    assert len({(metric, seconds) for metric, seconds, _ in readings}) == 400
    assert max(seconds for _, seconds, _ in readings) == FIRST_MINUTE
    assert all(seconds % 60 == 0 for _, seconds, _ in readings)
    assert all(limits[metric][0] <= value <= limits[metric][1] for metric, _, value in readings)


def test_the_same_seed_gives_the_same_readings():
    plan = LoadPlan(devices=2, batch=10, readings=20, seed=3)

    def readings(device):
        return batches_from(LoadSource(plan, device, 0.0, None, 10, FIRST_MINUTE))

    assert readings(1) == readings(1)
    assert readings(0) != readings(1)


def test_a_paced_device_waits_for_each_batch_to_fall_due():
    plan = LoadPlan(devices=2, batch=10, rate=400, readings=40)  # each device: a batch every 0.05 s

    async def run():
        loop = asyncio.get_running_loop()
        start = loop.time()
        source = LoadSource(plan, 1, start, None, 20, FIRST_MINUTE)
        times = []
        while await source() is not None:
            times.append(loop.time() - start)
        return times

    first, second = asyncio.run(run())
    # Device 1 of 2 is half an interval behind device 0; asyncio may wake a clock tick early.
    assert first >= 0.025 - TICK
    assert second >= 0.075 - TICK


def test_a_device_stops_at_the_deadline():
    plan = LoadPlan(devices=1, batch=10, rate=100)  # a batch every 0.1 s

    async def run():
        start = asyncio.get_running_loop().time()
        return await drain(LoadSource(plan, 0, start, start + 0.25, None, FIRST_MINUTE))

    assert len(asyncio.run(run())) == 3  # due at 0, 0.1 and 0.2 s


def figures(**values) -> LoadFigures:
    base = dict.fromkeys(LoadFigures.__dataclass_fields__, 0)
    return LoadFigures(**{**base, "error_codes": {}, **values})


def test_a_failed_run_says_in_one_line_what_went_wrong_with_each_count_in_the_right_number():
    failed = figures(devices=3, rejected=1, unacknowledged=2, failed_devices=1)
    assert not failed.ok
    assert failed.problem() == "1 batch rejected, 2 batches never acknowledged, 1 device of 3 gave up"


def test_a_failed_run_hints_at_the_stream_limit_when_the_server_refused_streams():
    crowded = figures(failed_devices=1, error_codes={"RESOURCE_EXHAUSTED": 9, "device gave up": 1})
    assert any("--devices-per-user" in hint for hint in crowded.hints())


def test_a_failed_run_says_how_many_devices_were_refused_their_first_stream():
    one = figures(devices=9, refused_devices=1, error_codes={"RESOURCE_EXHAUSTED": 3})
    two = figures(devices=9, refused_devices=2, error_codes={"RESOURCE_EXHAUSTED": 3, "INTERNAL": 1})

    assert not one.ok and not two.ok
    assert one.problem() == "1 device of 9 was refused its first stream, so offered less than planned"
    assert two.problem() == "2 devices of 9 were refused their first stream, so offered less than planned"
    assert any("--devices-per-user" in hint for hint in one.hints())


def test_a_paced_batch_holds_no_more_than_a_devices_share_of_the_rate_in_a_second():
    assert paced_batch(50, 10, 100) == 5  # 5 readings a second each
    assert paced_batch(20_000, 50, 100) == 100  # 400 a second each: the batch asked for
    assert paced_batch(5, 10, 100) == 1  # half a reading a second each: one at a time
    assert paced_batch(0, 10, 100) == 100  # unpaced


def test_a_short_paced_run_offers_its_target_spread_over_the_run_not_one_burst():
    plan = LoadPlan(devices=10, rate=50, duration=0.5)  # the default batch of 100

    async def run():
        start = asyncio.get_running_loop().time()
        sources = [LoadSource(plan, device, start, start + 0.5, None, FIRST_MINUTE) for device in range(10)]
        return await asyncio.gather(*(drain(source) for source in sources))

    made = asyncio.run(run())
    # Each device's 5 readings a second come as one batch of 5; in half a second, the first five devices'.
    assert [len(batch) for batches in made for batch in batches] == [5] * 5


def device_stats(readings: int) -> DeviceStats:
    """A device that sent `readings` in one batch, acknowledged."""
    return DeviceStats("load-0", batches=1, readings=readings, readings_delivered=readings, accepted=1)


def test_a_paced_run_acknowledged_early_counts_its_readings_over_the_span_its_schedule_covers():
    # One batch of 100 readings at a target of 50 a second, acknowledged 13 ms after it was due: the run
    # offered 2 seconds' worth, so it sustained 50 readings a second, not 7,700.
    paced = figures_of(LoadPlan(devices=1, rate=50), 1, [device_stats(100)], 0.013, 0.1, 0)
    unpaced = figures_of(LoadPlan(devices=1, rate=0), 1, [device_stats(100)], 0.5, 0.1, 0)

    assert (paced.seconds, paced.readings_per_s) == (2.0, 50.0)
    assert (unpaced.seconds, unpaced.readings_per_s) == (0.5, 200.0)


def test_a_device_was_refused_its_first_stream_when_the_server_erred_before_it_asked_for_a_batch():
    plan = LoadPlan(devices=1, batch=10, readings=10)

    def device_meeting(errors_before_its_stream: dict, errors_after: dict | None) -> tuple[LoadSource, DeviceStats]:
        """A device that met these errors, then (unless `errors_after` is None) got its stream and sent."""
        source, stats = LoadSource(plan, 0, 0.0, None, 10, FIRST_MINUTE), device_stats(10)
        source.watch(stats)
        stats.server_errors.update(errors_before_its_stream)
        if errors_after is not None:
            batches_from(source)  # the source is first asked for a batch right after the first welcome
            stats.server_errors.update(errors_after)
        return source, stats

    assert refused_first_stream(*device_meeting({"RESOURCE_EXHAUSTED": 2}, {}))
    assert refused_first_stream(*device_meeting({"RESOURCE_EXHAUSTED": 9}, None))  # never had a stream
    # After its first stream, an error is a reconnect's (the server may still hold the old stream), not a refusal.
    assert not refused_first_stream(*device_meeting({}, {"UNAVAILABLE": 1, "RESOURCE_EXHAUSTED": 1}))
