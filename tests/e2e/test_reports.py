"""Week and month reports, and the CSV and PDF downloads, over the real server."""

import csv
import io
import re
import struct
import subprocess
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
from google.type.date_pb2 import Date

from fittrack.generated.v1 import account_pb2, common_pb2, goal_pb2, report_pb2
from tests.cli_runner import utc_today, write_csv
from tests.support import batch, eventually, reading, rpc_error, upload

Code = grpc.StatusCode
STEPS = common_pb2.METRIC_KIND_STEPS
CALORIES = common_pb2.METRIC_KIND_CALORIES_BURNED
DISTANCE = common_pb2.METRIC_KIND_DISTANCE
HEART_RATE = common_pb2.METRIC_KIND_HEART_RATE
CSV, PDF = report_pb2.REPORT_FORMAT_CSV, report_pb2.REPORT_FORMAT_PDF
PARIS = ZoneInfo("Europe/Paris")


def proto_date(day: date) -> Date:
    return Date(year=day.year, month=day.month, day=day.day)


def noon(day: date) -> int:
    return int(datetime.combine(day, time(12), PARIS).timestamp())


def last_full_week(clock) -> list[date]:
    today = clock().astimezone(PARIS).date()
    monday = today - timedelta(days=today.weekday() + 7)
    return [monday + timedelta(days=i) for i in range(7)]


def steps_on(stubs, user, days_and_steps):
    """Store one reading a minute from local noon on each day, `steps` in all (100 a minute)."""
    batches = []
    for day, steps in days_and_steps:
        minutes = [min(100, steps - 100 * i) for i in range((steps + 99) // 100)]
        batches.append(batch([reading(STEPS, noon(day) + 60 * i, value) for i, value in enumerate(minutes)]))
    upload(stubs, user, *batches)


def steps_section(report):
    return next(m for m in report.metrics if m.metric == STEPS)


def test_the_weekly_report_compares_each_day_with_the_goal_and_the_week_before(stubs, alice, clock):
    stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=1000), metadata=alice.auth
    )
    week = last_full_week(clock)
    previous = [d - timedelta(days=7) for d in week]
    # Mon 1200, Tue 400, Wed nothing, Thu 900, Fri 1000, Sat 1500, Sun 2000; the week before: 3000 in all.
    steps_on(
        stubs,
        alice,
        [(week[0], 1200), (week[1], 400), (week[3], 900), (week[4], 1000), (week[5], 1500), (week[6], 2000)],
    )
    steps_on(stubs, alice, [(previous[2], 3000)])

    def view():
        return stubs.reports.ViewReport(
            report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK), metadata=alice.auth
        )

    report = eventually(view, lambda r: steps_section(r).total == 7000 and steps_section(r).previous_total == 3000)
    assert (report.start, report.end) == (proto_date(week[0]), proto_date(week[6]))
    section = steps_section(report)
    assert [d.value for d in section.days] == [1200, 400, 0, 900, 1000, 1500, 2000]
    assert [d.goal_met for d in section.days] == [True, False, False, False, True, True, True]
    assert section.average == 7000 / 6
    assert (section.best_day, section.best_value) == (proto_date(week[6]), 2000)
    assert (section.days_goal_met, section.current_streak) == (4, 3)
    assert section.daily_goal_target == 1000
    assert round(section.change_percent, 2) == round((7000 - 3000) / 3000 * 100, 2)
    assert {m.metric for m in report.metrics} == set(range(1, 6))


def test_this_weeks_streak_counts_back_from_today_once_today_met_the_goal(cli, logged_in, tmp_path):
    """`fittrack report view --week --date today`: every day from Monday to today met the goal.

    The week's Sunday is still to come; the streak used to be counted back from it, and was 0.
    """
    today = utc_today()  # the user lives in UTC
    monday = today - timedelta(days=today.weekday())
    cli.ok("goals", "add", "--metric", "steps", "--period", "daily", "--target", "100")
    rows = [(f"{monday + timedelta(days=n)}T00:00:00Z", "steps", 150) for n in range(today.weekday() + 1)]
    cli.ok("readings", "push", str(write_csv(tmp_path / "week.csv", rows)))
    met = today.weekday() + 1
    days = f"{met} day" if met == 1 else f"{met} days"

    def steps_section() -> str:
        return cli.ok("report", "view", "--week", "--date", "today").split("\nsteps\n", 1)[1].split("\n\n")[0]

    section = eventually(steps_section, lambda text: re.search(rf"total\s+{150 * met:,} steps", text))
    so_far = f"{days} so far" if met < 7 else days  # a Sunday's week has ended by tonight only
    assert re.search(rf"goal met\s+{met} of {so_far} \(daily goal", section), section
    assert f"streak {days}" in section, section


def test_a_report_names_no_best_day_for_heart_rate(stubs, alice, clock):
    """The highest average bpm is no achievement: the heart rate section leaves best_day unset."""
    week = last_full_week(clock)
    upload(stubs, alice, batch([reading(HEART_RATE, noon(week[2]) + 60 * i, v) for i, v in enumerate([60, 90])]))
    request = report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK)

    def heart():
        report = stubs.reports.ViewReport(request, metadata=alice.auth)
        return next(m for m in report.metrics if m.metric == HEART_RATE)

    section = eventually(heart, lambda s: s.average == 75)
    assert not section.HasField("best_day") and section.best_value == 0


def test_a_week_in_progress_says_how_many_of_its_days_have_come_so_far(stubs, alice, clock):
    today = clock().astimezone(ZoneInfo("Europe/Paris")).date()  # alice's zone
    for anchor, so_far in ((today, today.weekday() + 1), (today - timedelta(days=7), 7)):
        request = report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK, anchor=proto_date(anchor))
        report = stubs.reports.ViewReport(request, metadata=alice.auth)
        assert {m.days_so_far for m in report.metrics} == {so_far}, anchor


def test_a_report_without_an_earlier_period_has_no_change_figure(stubs, alice, clock):
    week = last_full_week(clock)
    steps_on(stubs, alice, [(week[2], 500)])
    request = report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK, anchor=proto_date(week[4]))
    report = eventually(
        lambda: stubs.reports.ViewReport(request, metadata=alice.auth), lambda r: steps_section(r).total == 500
    )
    assert not steps_section(report).HasField("change_percent")


def test_a_monthly_report_covers_the_whole_calendar_month(stubs, alice):
    request = report_pb2.ViewReportRequest(
        period=report_pb2.REPORT_PERIOD_MONTH, anchor=Date(year=2024, month=2, day=10)
    )
    report = stubs.reports.ViewReport(request, metadata=alice.auth)
    assert (report.start, report.end) == (Date(year=2024, month=2, day=1), Date(year=2024, month=2, day=29))
    assert len(steps_section(report).days) == 29


def test_a_report_needs_a_known_period(stubs, alice):
    error = rpc_error(lambda: stubs.reports.ViewReport(report_pb2.ViewReportRequest(), metadata=alice.auth))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "WEEK" in error.details()


def download(stubs, user, start: date, end: date, file_format: int = CSV):
    request = report_pb2.DownloadReportRequest(
        range=common_pb2.DateRange(start=proto_date(start), end=proto_date(end)), format=file_format
    )
    return list(stubs.reports.DownloadReport(request, metadata=user.auth))


def downloaded_file(stubs, user, start: date, end: date, file_format: int = CSV):
    """The info message and the bytes of the chunks after it; every chunk is at most 64 KiB."""
    first, *chunks = download(stubs, user, start, end, file_format)
    assert first.WhichOneof("part") == "info"
    assert all(c.WhichOneof("part") == "chunk" and 0 < len(c.chunk) <= 64 * 1024 for c in chunks)
    return first.info, b"".join(c.chunk for c in chunks)


def csv_rows(content: bytes) -> dict[str, dict[str, str]]:
    return {row["date"]: row for row in csv.DictReader(io.StringIO(content.decode()))}


def test_a_downloaded_csv_announces_its_size_and_holds_the_stored_values(stubs, alice, clock):
    week = last_full_week(clock)
    steps_on(stubs, alice, [(week[1], 250), (week[3], 1234)])
    eventually(
        lambda: stubs.reports.ViewReport(
            report_pb2.ViewReportRequest(period=report_pb2.REPORT_PERIOD_WEEK), metadata=alice.auth
        ),
        lambda r: steps_section(r).total == 1484,
    )
    ten_years_back = week[6] - timedelta(days=3659)
    first, *chunks = download(stubs, alice, ten_years_back, week[6])
    content = b"".join(c.chunk for c in chunks)
    assert first.info.content_type == "text/csv"
    assert first.info.total_bytes == len(content)
    assert len(chunks) > 1  # ten years do not fit one 64 KiB chunk
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert len(rows) == 3660
    by_day = {row["date"]: row for row in rows}
    assert by_day[week[1].isoformat()]["steps"] == "250"
    assert by_day[week[3].isoformat()]["steps"] == "1234"
    assert by_day[week[2].isoformat()]["steps"] == ""


def test_a_download_over_ten_years_or_without_a_format_is_refused(stubs, alice):
    too_long = rpc_error(lambda: download(stubs, alice, date(2000, 1, 1), date(2020, 1, 1)))
    assert too_long.code() == Code.INVALID_ARGUMENT
    assert "at most 3660" in too_long.details()
    request = report_pb2.DownloadReportRequest(
        range=common_pb2.DateRange(start=Date(year=2026, month=1, day=1), end=Date(year=2026, month=1, day=2))
    )
    no_format = rpc_error(lambda: list(stubs.reports.DownloadReport(request, metadata=alice.auth)))
    assert no_format.code() == Code.INVALID_ARGUMENT
    assert "CSV" in no_format.details()


def test_a_downloaded_csv_parses_back_to_the_uploaded_daily_totals(stubs, alice, clock):
    week = last_full_week(clock)
    # Per day and metric: (minute offset from local noon, value) readings; the CSV holds their sums.
    uploaded = {
        (week[0], STEPS): [95, 110, 87],
        (week[0], CALORIES): [3.5, 4.25],
        (week[2], DISTANCE): [812.5, 640],
        (week[4], STEPS): [1000, 1000, 999, 1],
        (week[6], CALORIES): [12],
    }
    upload(
        stubs,
        alice,
        batch(
            reading(metric, noon(day) + 60 * minute, value)
            for (day, metric), values in uploaded.items()
            for minute, value in enumerate(values)
        ),
    )
    columns = {STEPS: "steps", CALORIES: "calories", DISTANCE: "distance"}
    expected = {(day.isoformat(), columns[metric]): sum(values) for (day, metric), values in uploaded.items()}

    def stored_cells():
        info, content = downloaded_file(stubs, alice, week[0], week[6])
        assert info.total_bytes == len(content)
        rows = csv_rows(content)
        return {
            (day, column): float(row[column]) for day, row in rows.items() for column in columns.values() if row[column]
        }

    assert eventually(stored_cells, lambda cells: cells == expected) == expected


def test_a_downloaded_pdf_announces_its_size_and_renders_to_an_image(stubs, alice, clock, tmp_path):
    stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=1000), metadata=alice.auth
    )
    week = last_full_week(clock)
    steps_on(stubs, alice, [(week[1], 1500), (week[5], 800)])
    eventually(
        lambda: csv_rows(downloaded_file(stubs, alice, week[0], week[6])[1]), lambda r: r[week[5].isoformat()]["steps"]
    )
    start = week[6] - timedelta(days=364)
    info, content = downloaded_file(stubs, alice, start, week[6], PDF)
    assert (info.content_type, info.filename) == ("application/pdf", f"fittrack-{start}-{week[6]}.pdf")
    assert info.total_bytes == len(content)
    assert content.startswith(b"%PDF-")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(content)
    # With no output root pdftoppm writes the page to stdout.
    page = subprocess.run(
        ["pdftoppm", "-png", "-f", "1", "-l", "1", "-r", "50", str(pdf)], capture_output=True, check=True, timeout=60
    ).stdout
    assert page.startswith(b"\x89PNG\r\n\x1a\n") and page[12:16] == b"IHDR"
    width, height = struct.unpack(">II", page[16:24])
    assert width > 100 and height > 100
    assert abs(width - 413) <= 2 and abs(height - 584) <= 2  # A4 portrait at 50 dpi
    assert len(page) > 5_000  # a page with a table and charts, not a blank one


def test_a_downloaded_pdf_names_the_person_shows_km_and_charts_only_the_days_with_data(stubs, alice, clock, tmp_path):
    """Ten years over two days of data: the page's text, read back with pdftotext."""
    stubs.accounts.UpdateProfile(
        account_pb2.UpdateProfileRequest(profile=account_pb2.ProfileFields(display_name="Alice Martin")),
        metadata=alice.auth,
    )
    stubs.goals.CreateGoal(
        goal_pb2.CreateGoalRequest(metric=STEPS, period=common_pb2.GOAL_PERIOD_DAILY, target=1000), metadata=alice.auth
    )
    week = last_full_week(clock)
    steps_on(stubs, alice, [(week[1], 1500), (week[5], 800)])
    # 12,340 m on Tuesday, and a heart rate of 60 to 90 bpm over three minutes.
    distance = [reading(DISTANCE, noon(week[1]) + 60 * i, v) for i, v in enumerate([1000] * 12 + [340])]
    heart = [reading(HEART_RATE, noon(week[1]) + 60 * i, v) for i, v in enumerate([60, 75, 90])]
    upload(stubs, alice, batch(distance + heart))
    start = week[6] - timedelta(days=3659)

    def page_text() -> str:
        info, content = downloaded_file(stubs, alice, start, week[6], PDF)
        assert info.content_type == "application/pdf"
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(content)
        command = ["pdftotext", "-layout", str(pdf), "-"]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout

    # Writes show a moment later: wait for the table's steps total, distance and average bpm.
    text = eventually(page_text, lambda t: "2,300 steps" in t and "12.34 km" in t and "75 bpm" in t)
    assert "Fittrack report: Alice Martin" in text
    assert "Summary of all 3,660 days" in text
    assert "the part of the range with data; a bar per day" in text  # not ten years of empty weeks
    assert "12.34 km" in text and "12,340" not in text
    assert "Distance (km)" in text and "Heart rate (bpm)" in text
    assert "goal met" in text and "daily goal: 1,000 steps" in text
    # Goal met out of the days with data (1,500 and 800 steps against 1,000), not of the 3,660 days.
    assert re.search(r"Steps .* 2 +1,000 steps +1 of 2\n", text), text
    assert "range: 60–90 bpm" in text  # heart rate: its lowest and highest minute, not a best day
    assert "\f" not in text.rstrip("\f")  # one page


def test_a_download_in_an_unknown_format_is_refused_naming_csv_and_pdf(stubs, alice):
    error = rpc_error(lambda: download(stubs, alice, date(2026, 1, 1), date(2026, 1, 2), 7))
    assert error.code() == Code.INVALID_ARGUMENT
    assert "CSV" in error.details() and "PDF" in error.details()


def test_a_download_holds_the_callers_days_and_never_another_users(stubs, alice, bob, clock):
    week = last_full_week(clock)
    steps_on(stubs, bob, [(week[2], 4321)])
    steps_on(stubs, alice, [(week[3], 300)])

    def alice_rows():
        return csv_rows(downloaded_file(stubs, alice, week[0], week[6])[1])

    rows = eventually(alice_rows, lambda r: r[week[3].isoformat()]["steps"] == "300")
    assert rows[week[2].isoformat()]["steps"] == ""
    # Bob's own download has his day (so it was stored), and not Alice's.
    bob_rows = eventually(
        lambda: csv_rows(downloaded_file(stubs, bob, week[0], week[6])[1]),
        lambda r: r[week[2].isoformat()]["steps"] == "4321",
    )
    assert bob_rows[week[3].isoformat()]["steps"] == ""
