"""The wearable simulator and the load generator against a real server: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fittrack.clients import loadgen, simulator
from fittrack.clients.activity import STEPS, day_seed, simulate_day, simulate_phone, within_hours
from fittrack.clients.fleet import FleetPlan, FleetReport, run_fleet
from fittrack.clients.loadgen import LoadPlan, generate_load
from fittrack.clients.sync import SyncBehaviour

UTC_ZONE = ZoneInfo("UTC")
# Two hours of a morning with its walk: a few hundred readings per device, which the production profile's
# persister applies in seconds.
MORNING = (7, 9)
# Drops often, reconnects fast, and fails in seconds rather than minutes if the server stops answering.
FLAKY = SyncBehaviour(disconnect_rate=0.4, base_backoff=0.02, max_backoff=0.2, ack_timeout=10.0, max_failures=4)


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def fleet(server, **plan) -> FleetReport:
    defaults = {"last_day": yesterday(), "hours": MORNING, "batch_size": 25, "behaviour": FLAKY, "verify_timeout": 15}
    return asyncio.run(run_fleet(server.address, FleetPlan(**(defaults | plan))))


def watch_steps(seed: int, user: int, day: date) -> float:
    """What the simulator's watch counts for `user` that morning, computed here from simulate_day alone."""
    readings = simulate_day(day, UTC_ZONE, day_seed(seed, user, day))
    return sum(value for metric, _, value in within_hours(readings, UTC_ZONE, MORNING) if metric == STEPS)


def test_a_fleet_that_keeps_losing_its_connection_delivers_every_reading_exactly_once(server):
    report = fleet(server, devices=3, seed=11)

    assert report.failures == []
    assert sum(device.drops for device in report.devices) >= 3
    for device in report.devices:
        assert device.batches > 0
        assert device.delivered == device.batches
        assert device.unacknowledged == device.rejected == 0
    day = report.days[0]
    users = sorted(report.server_steps)
    # Each user's morning as ViewMetric shows it is exactly what their watch counted: a lost batch would show
    # fewer steps, a batch applied twice more.
    assert [report.server_steps[name][day] for name in users] == [watch_steps(11, user, day) for user in range(3)]
    assert report.verified


def test_a_watch_and_a_phone_of_one_user_count_each_minute_once_at_the_higher_device(server):
    report = fleet(server, devices=2, devices_per_user=2, seed=5)

    assert report.failures == []
    assert [device.device_id.split("-")[0] for device in report.devices] == ["watch", "phone"]
    day = report.days[0]
    watch = within_hours(simulate_day(day, UTC_ZONE, day_seed(5, 0, day)), UTC_ZONE, MORNING)
    phone = within_hours(
        simulate_phone(simulate_day(day, UTC_ZONE, day_seed(5, 0, day)), day_seed(5, 0, day, 1)),
        UTC_ZONE,
        MORNING,
    )
    per_minute: dict[int, float] = {}
    for metric, seconds, value in watch + phone:
        if metric == STEPS:
            per_minute[seconds] = max(value, per_minute.get(seconds, 0.0))
    ((_, shown),) = report.server_steps.items()
    assert shown[day] == sum(per_minute.values())
    assert shown[day] > watch_steps(5, 0, day)  # the phone counted more than the wrist in some minutes


def test_the_simulator_command_prints_a_summary_and_succeeds(server, capsys):
    status = simulator.main(
        ["--server", server.address, "--devices", "2", "--date", yesterday().isoformat(), "--hours", "8-9"]
        + ["--batch-size", "20", "--disconnect-rate", "0.3", "--max-backoff", "0.2", "--seed", "3"]
        + ["--ack-timeout", "10", "--give-up-after", "3"]
    )
    out, err = capsys.readouterr()

    assert status == 0, err
    assert "2 devices of 2 users synced" in out
    assert "verified: every user's steps per day are what was simulated" in out
    assert err == ""


def test_a_short_load_run_gets_every_batch_acknowledged(server):
    figures = asyncio.run(generate_load(server.address, LoadPlan(devices=3, readings=600, batch=50, window=4)))

    assert figures.ok
    assert (figures.readings, figures.batches, figures.acknowledged) == (600, 12, 12)
    assert figures.accepted == 12 and figures.duplicate == figures.rejected == figures.unacknowledged == 0
    assert figures.errors == 0 and figures.error_codes == {}
    assert 0 < figures.ack_p50_ms <= figures.ack_p99_ms
    assert figures.readings_per_s > 0


def test_a_paced_load_run_holds_back_to_its_target_rate(server):
    # Two devices, 400 readings at 400 readings/s in batches of 50: a batch every 0.25 s per device,
    # the second device an eighth of a second behind; its last batch is due after 0.875 s.
    plan = LoadPlan(devices=2, rate=400, readings=400, batch=50)
    figures = asyncio.run(generate_load(server.address, plan))

    assert figures.ok and figures.readings == 400
    assert figures.seconds >= 0.875 - 0.01
    assert figures.target_readings_per_s == 400


def test_the_load_generator_command_prints_one_json_line(server, capsys):
    status = loadgen.main(["--server", server.address, "--devices", "2", "--readings", "200", "--batch", "40"])
    out, err = capsys.readouterr()

    assert status == 0, err
    (line,) = out.splitlines()
    figures = json.loads(line)
    assert figures["readings"] == 200 and figures["batches"] == 6 and figures["acknowledged"] == 6
    assert {"readings_per_s", "ack_p50_ms", "ack_p99_ms", "rejected", "duplicate", "errors"} <= figures.keys()
