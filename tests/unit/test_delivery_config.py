"""Delivery settings read from the environment, and the ones refused before anything starts."""

import pytest

from fittrack.app.config import Config, ConfigError
from fittrack.app.wiring import dispatch_settings, push_channel


def test_pushes_are_off_until_a_webhook_is_configured_and_retry_as_the_environment_says():
    assert push_channel(Config.from_env({})) is None
    config = Config.from_env(
        {
            "FITTRACK_WEBHOOK_URL": "https://hooks.example.org/fittrack",
            "FITTRACK_PUSH_MAX_ATTEMPTS": "4",
            "FITTRACK_PUSH_BACKOFF_BASE_SECONDS": "0.5",
            "FITTRACK_PUSH_BACKOFF_MAX_SECONDS": "30",
            "FITTRACK_PUSH_TIMEOUT_SECONDS": "2",
        }
    )
    assert push_channel(config) is not None
    settings = dispatch_settings(config)
    assert (settings.retry.max_attempts, settings.retry.base_seconds, settings.retry.max_seconds) == (4, 0.5, 30)
    assert settings.lease_seconds == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FITTRACK_WEBHOOK_URL", "ftp://hooks.example.org/"),
        ("FITTRACK_PUSH_MAX_ATTEMPTS", "0"),
        ("FITTRACK_PUSH_BACKOFF_BASE_SECONDS", "7200"),
        ("FITTRACK_PUSH_TIMEOUT_SECONDS", "0"),
    ],
)
def test_a_malformed_delivery_setting_is_refused_naming_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})
