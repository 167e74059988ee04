"""How the clients decide between plaintext and TLS from their options, addresses and environment."""

import argparse

import pytest

from fittrack.clients.channel import ChannelError, Security, add_tls_options, split_target


def parse(*argv: str, env: dict[str, str] | None = None) -> Security:
    parser = argparse.ArgumentParser()
    add_tls_options(parser)
    return Security.from_args(parser.parse_args(argv), env or {})


def test_plaintext_is_the_default():
    assert not parse().secure


def test_a_ca_file_or_the_tls_switch_means_tls():
    assert parse("--ca-file", "ca.pem").secure
    assert parse("--tls").secure
    assert parse(env={"FITTRACK_CA_FILE": "ca.pem"}).ca_file == "ca.pem"
    assert parse(env={"FITTRACK_TLS": "1"}).secure


def test_an_option_wins_over_its_environment_variable():
    assert parse("--ca-file", "mine.pem", env={"FITTRACK_CA_FILE": "theirs.pem"}).ca_file == "mine.pem"


@pytest.mark.parametrize(
    ("address", "target", "secure"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051", False),
        ("grpcs://api.example.org:443", "api.example.org:443", True),
        ("https://api.example.org:443/", "api.example.org:443", True),
        ("grpc://127.0.0.1:50051", "127.0.0.1:50051", False),
    ],
)
def test_a_grpcs_or_https_address_asks_for_tls(address, target, secure):
    assert split_target(address) == (target, Security(tls=secure))


def test_a_client_certificate_without_its_key_is_refused_with_the_options_named():
    with pytest.raises(ChannelError, match="--cert-file and --key-file"):
        Security(cert_file="client.pem").credentials()


def test_an_unreadable_ca_file_names_the_option(tmp_path):
    with pytest.raises(ChannelError, match="--ca-file"):
        Security(ca_file=str(tmp_path / "missing.pem")).credentials()


def test_a_client_may_name_several_balancers_and_each_address_is_checked():
    several = "ipv4:198.18.0.11:50051,198.18.0.12:50051,198.18.0.13:50051"
    assert split_target(several) == (several, Security())
    with pytest.raises(ChannelError, match="99999"):
        split_target("ipv4:198.18.0.11:50051,198.18.0.12:99999")
