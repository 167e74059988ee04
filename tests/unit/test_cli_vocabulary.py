"""The CLI's words: it names every metric the server knows and sends each as its wire number, its articles read
as English, JSON speaks its words, and forgotten sessions wait for a server that answers."""

from __future__ import annotations

import json
import stat
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

import pytest

from fittrack.clients.cli.session import Session, end_forgotten, forgotten_path, remember_forgotten
from fittrack.clients.cli.terminal import message_dict
from fittrack.clients.cli.vocabulary import Metric, a_or_an
from fittrack.core.domain.metrics import MetricKind
from fittrack.generated.v1 import common_pb2, goal_pb2, report_pb2


def test_the_cli_names_every_metric_the_server_knows_and_sends_it_as_the_wire_number_of_that_kind():
    assert [metric.domain for metric in Metric] == list(MetricKind)
    for metric in Metric:
        assert common_pb2.MetricKind.Name(metric.kind) == f"METRIC_KIND_{metric.domain.name}", metric
        assert metric.kind == metric.domain.value, metric


@pytest.mark.parametrize(
    ("word", "phrase"),
    [("xlsx", "an xlsx"), ("txt", "a txt"), ("html", "an html"), ("exe", "an exe"), ("json", "a json")],
)
def test_an_article_goes_by_how_the_extension_is_read(word, phrase):
    assert a_or_an(word) == phrase


def test_json_says_metrics_periods_and_sexes_in_the_clis_words_at_any_depth():
    goal = goal_pb2.Goal(goal_id="g", metric=common_pb2.METRIC_KIND_HEART_RATE, period=common_pb2.GOAL_PERIOD_WEEKLY)
    shown = message_dict(goal_pb2.ListGoalsResponse(goals=[goal]))
    assert (shown["goals"][0]["metric"], shown["goals"][0]["period"]) == ("heart_rate", "weekly")
    report = message_dict(report_pb2.Report(metrics=[report_pb2.MetricReport(metric=common_pb2.METRIC_KIND_DISTANCE)]))
    assert report["metrics"][0]["metric"] == "distance"


def _session(token: str, expires_in: timedelta) -> Session:
    now = datetime.now(UTC)
    return Session(
        server="127.0.0.1:9",
        username="someone",
        user_id="u",
        access_token=f"access-{token}",
        access_token_expires_at=(now + timedelta(minutes=15)).isoformat(),
        refresh_token=token,
        refresh_token_expires_at=(now + expires_in).isoformat(),
    )


def test_a_forgotten_session_is_kept_owner_only_until_its_server_ends_it_and_an_expired_one_is_dropped(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    unreachable, reachable, expired = (
        _session("a", timedelta(days=30)),
        _session("b", timedelta(days=30)),
        _session("c", timedelta(days=30)),
    )
    for session in (unreachable, reachable, expired, reachable):  # the same one twice is kept once
        remember_forgotten(session)
    assert stat.S_IMODE(forgotten_path().stat().st_mode) == 0o600
    stored = json.loads(forgotten_path().read_text())
    assert [entry["refresh_token"] for entry in stored] == ["a", "c", "b"]
    stored[1] = asdict(replace(expired, refresh_token_expires_at=datetime(2020, 1, 1, tzinfo=UTC).isoformat()))
    forgotten_path().write_text(json.dumps(stored))

    asked: list[str] = []

    def end(session: Session) -> bool:
        asked.append(session.refresh_token)
        return session.refresh_token != unreachable.refresh_token

    end_forgotten(end)
    assert sorted(asked) == ["a", "b"]  # the expired one is over without asking
    assert [entry["refresh_token"] for entry in json.loads(forgotten_path().read_text())] == ["a"]

    end_forgotten(lambda session: True)
    assert not forgotten_path().exists()
