"""TLS settings are checked once, at start-up, with messages that name the variable to fix."""

import pytest

from fittrack.app.config import Config, ConfigError
from tests.certificates import CertificateAuthority


@pytest.fixture
def authority(tmp_path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki", "fittrack")


def test_plaintext_stays_the_default():
    config = Config.from_env({})

    assert config.tls_files() is None


def test_a_certificate_and_key_give_tls_and_a_client_ca_asks_for_client_certificates(authority):
    issued = authority.server()
    env = {"FITTRACK_TLS_CERT_FILE": str(issued.cert_file), "FITTRACK_TLS_KEY_FILE": str(issued.key_file)}

    chain, key, client_ca = Config.from_env(env).tls_files()
    with_ca = Config.from_env({**env, "FITTRACK_TLS_CLIENT_CA_FILE": str(authority.cert_file)}).tls_files()

    assert chain == issued.cert_file.read_bytes() and key == issued.key_file.read_bytes()
    assert client_ca is None
    assert with_ca[2] == authority.cert_file.read_bytes()


def test_the_config_repr_never_shows_the_key_only_its_path(authority):
    issued = authority.server()
    env = {"FITTRACK_TLS_CERT_FILE": str(issued.cert_file), "FITTRACK_TLS_KEY_FILE": str(issued.key_file)}

    shown = repr(Config.from_env(env))

    assert "PRIVATE KEY" not in shown


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"tls_cert_file": "server"}, "FITTRACK_TLS_KEY_FILE is not"),
        ({"tls_key_file": "key"}, "FITTRACK_TLS_CERT_FILE is not"),
        ({"tls_client_ca_file": "ca"}, "needs FITTRACK_TLS_CERT_FILE"),
        ({"tls_cert_file": "missing", "tls_key_file": "key"}, "FITTRACK_TLS_CERT_FILE: cannot read"),
        ({"tls_cert_file": "server", "tls_key_file": "not-pem"}, "FITTRACK_TLS_KEY_FILE: "),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_at_start_with_the_variable_named(
    settings, complaint, authority, tmp_path
):
    issued = authority.server()
    (tmp_path / "not-pem").write_text("just text")
    files = {
        "server": str(issued.cert_file),
        "key": str(issued.key_file),
        "ca": str(authority.cert_file),
        "missing": str(tmp_path / "missing.pem"),
        "not-pem": str(tmp_path / "not-pem"),
    }
    env = {f"FITTRACK_{name.upper()}": files[value] for name, value in settings.items()}

    with pytest.raises(ConfigError, match=complaint):
        Config.from_env(env)


def test_a_key_file_that_is_not_pem_is_refused_without_quoting_it(authority, tmp_path):
    issued = authority.server()
    key = tmp_path / "key.txt"
    key.write_text("hunter2-not-a-key")
    env = {"FITTRACK_TLS_CERT_FILE": str(issued.cert_file), "FITTRACK_TLS_KEY_FILE": str(key)}

    with pytest.raises(ConfigError, match="not a PEM file") as raised:
        Config.from_env(env)

    assert "hunter2" not in str(raised.value)
