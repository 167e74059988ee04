"""Process-wide settings read from the environment, and the ones refused before anything starts."""

import pytest

from core.config import Config, ConfigError


def test_the_gil_switch_interval_and_the_kafka_start_wait_come_from_the_environment():
    config = Config.from_env({"FITTRACK_GIL_SWITCH_INTERVAL_MS": "2", "FITTRACK_KAFKA_STARTUP_WAIT_SECONDS": "0"})
    assert (config.gil_switch_interval_ms, config.kafka_startup_wait_seconds) == (2.0, 0.0)
    assert Config.from_env({}).gil_switch_interval_ms == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FITTRACK_GIL_SWITCH_INTERVAL_MS", "0"),
        ("FITTRACK_GIL_SWITCH_INTERVAL_MS", "500"),
        ("FITTRACK_KAFKA_STARTUP_WAIT_SECONDS", "-1"),
    ],
)
def test_a_malformed_process_setting_is_refused_naming_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})
