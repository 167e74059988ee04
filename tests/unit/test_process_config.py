"""Process-wide settings read from the environment, and the ones refused before anything starts."""

import logging

import pytest

from fittrack.app.config import Config, ConfigError


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


def test_the_log_level_is_read_in_any_case_and_an_unknown_one_is_refused_listing_the_valid_ones():
    assert Config.from_env({"FITTRACK_LOG_LEVEL": "debug"}).logging_level == logging.DEBUG
    with pytest.raises(ConfigError) as refused:
        Config.from_env({"FITTRACK_LOG_LEVEL": "verbose"})
    assert str(refused.value) == (
        "FITTRACK_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (in any case), got 'verbose'"
    )


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:50051", "127.0.0.1", 50051),
        ("localhost:0", "localhost", 0),
        ("[::]:65535", "::", 65535),
        ("[::1]:1", "::1", 1),
        ("0.0.0.0:443", "0.0.0.0", 443),
    ],
)
def test_the_listen_address_is_a_host_and_a_port(listen, host, port):
    assert Config.from_env({"FITTRACK_LISTEN": listen}).listen_address() == (host, port)


@pytest.mark.parametrize(
    "listen", ["nonsense", "127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:", ":50051", "::1:50051", "h:-1", "h:port"]
)
def test_a_listen_address_that_is_not_host_colon_port_is_refused_before_grpc_could_pick_another_port(listen):
    with pytest.raises(ConfigError, match=r"^FITTRACK_LISTEN must be host:port with port 1-65535"):
        Config.from_env({"FITTRACK_LISTEN": listen})


PRODUCTION = {
    "FITTRACK_PROFILE": "production",
    "FITTRACK_PG_DSN": "postgresql://fittrack:s3cret@db:5432/fittrack",
    "FITTRACK_KAFKA_BOOTSTRAP": "broker1:9092, broker2:9092",
    "FITTRACK_MONGO_URI": "mongodb://m1,m2,m3/?replicaSet=rs0&w=majority",
}


def test_well_formed_production_addresses_are_accepted():
    assert Config.from_env(PRODUCTION).profile == "production"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FITTRACK_PG_DSN", "postgresql://fittrack:s3cret@db/fittrack?colour=blue"),
        ("FITTRACK_PG_REPLICA_DSN", "host=db s3cret"),
        ("FITTRACK_FERRETDB_PG_DSN", "s3cret"),
        ("FITTRACK_KAFKA_BOOTSTRAP", "broker1"),
        ("FITTRACK_MONGO_URI", "mongodb://user:s3cret@m1:99999/"),
        ("FITTRACK_MONGO_URI", "m1:27017"),
        ("FITTRACK_READINGS_PARTITIONS", "0"),
        ("FITTRACK_STREAM_RECHECK_SECONDS", "0"),
    ],
)
def test_a_malformed_production_setting_is_refused_naming_it_and_never_quoting_a_password(name, value):
    with pytest.raises(ConfigError, match=f"^{name}") as refused:
        Config.from_env({**PRODUCTION, name: value})
    assert "s3cret" not in str(refused.value)


def test_the_metrics_address_is_off_by_default_and_port_0_is_accepted():
    assert Config.from_env({}).metrics_listen == ""
    assert Config.from_env({"FITTRACK_METRICS_LISTEN": "127.0.0.1:0"}).metrics_listen == "127.0.0.1:0"
    assert Config.from_env({"FITTRACK_METRICS_LISTEN": "[::1]:9464"}).metrics_listen == "[::1]:9464"


@pytest.mark.parametrize("value", ["metrics", "127.0.0.1", "127.0.0.1:99999", ":9464", "host name:9464"])
def test_a_metrics_address_that_is_not_host_and_port_is_refused_naming_its_variable(value):
    with pytest.raises(ConfigError, match="FITTRACK_METRICS_LISTEN must be host:port"):
        Config.from_env({"FITTRACK_METRICS_LISTEN": value})
