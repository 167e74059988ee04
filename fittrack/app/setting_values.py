"""How one setting's text is read and checked: addresses, endpoints, connection strings, certificate files and the
SSO providers' list. Each problem is a ConfigError whose message names the FITTRACK_* variable and what to give;
none quotes a value that may be a secret."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from fittrack.core.domain.oidc import LOOPBACK_HOSTS, PROVIDER_NAME, SIGNING_ALGORITHMS, ProviderSettings


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def check_mongo_uri(uri: str) -> None:
    from pymongo.errors import ConfigurationError, InvalidURI
    from pymongo.uri_parser import parse_uri

    problem = "it must start with mongodb:// or mongodb+srv://"
    if uri.startswith("mongodb://"):
        try:
            # As MongoClient parses it: unknown options only warn (it warns again itself, so silence ours).
            # No network: only a mongodb+srv:// URI is looked up in DNS, and that is left to the driver.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parse_uri(uri, warn=True)
            return
        except (InvalidURI, ConfigurationError, ValueError) as error:
            # pymongo's messages name the part at fault, never the password.
            problem = str(error).rstrip(".")
    elif uri.startswith("mongodb+srv://"):
        return
    raise ConfigError(f"FITTRACK_MONGO_URI is not a MongoDB connection string: {problem}")


def check_pem(variable: str, path: Path) -> None:
    """The file exists, is readable and holds PEM, so a mistake shows at start-up rather than at the first handshake.

    The message never quotes the content: a key file holds a secret.
    """
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{variable}: cannot read {path} ({error.strerror})") from None
    if b"-----BEGIN " not in content:
        raise ConfigError(f"{variable}: {path} is not a PEM file (no -----BEGIN line)")


def parse_listen(listen: str, variable: str = "FITTRACK_LISTEN") -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as (host, port); ConfigError naming the variable otherwise.

    gRPC would take a port above 65535 modulo 65536 and quietly serve on another port.
    """
    host, colon, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        bracketed = True
    else:
        bracketed = False
    valid_host = bool(host) and not any(c.isspace() or c in "[]/" for c in host) and (bracketed or ":" not in host)
    if not colon or not valid_host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"{variable} must be host:port with port 1-65535 (or 0 for any free port), "
            f"such as 127.0.0.1:50051 or [::]:50051; got {listen!r}"
        )
    return host, int(port)


def parse_otlp_endpoint(endpoint: str) -> tuple[str, bool] | None:
    """`host:port` or `http://host:port` (plaintext), `https://host:port` (TLS) as (host:port, TLS); None if empty.

    Checked here because the exporter takes anything and then fails to connect, in the background, for ever.
    """
    endpoint = endpoint.strip()
    if not endpoint:
        return None
    scheme, separator, rest = endpoint.partition("://")
    if not separator:
        scheme, rest = "", endpoint
    address = rest.rstrip("/")
    problem = ""
    if scheme not in ("", "http", "https"):
        problem = f"the scheme must be http or https, not {scheme!r}"
    elif "/" in address:
        problem = "OTLP/gRPC takes no path (the collector's gRPC port, usually 4317)"
    else:
        try:
            host, port = parse_listen(address, "FITTRACK_OTLP_ENDPOINT")
        except ConfigError:
            problem = "it needs a host and a port"
        else:
            if port == 0:
                problem = "port 0 is no collector's port"
    if problem:
        raise ConfigError(
            f"FITTRACK_OTLP_ENDPOINT must be host:port, http://host:port or https://host:port of an OTLP/gRPC "
            f"collector, such as 127.0.0.1:4317 (or empty for no tracing); {problem}: got {endpoint!r}"
        )
    return address, scheme == "https"


_PROVIDER_KEYS = {
    "name",
    "issuer",
    "client_id",
    "client_secret",
    "trusted_audiences",
    "allowed_algorithms",
    "redirect_uris",
    "scopes",
}


def parse_oidc_providers(raw: str) -> tuple[ProviderSettings, ...]:
    """FITTRACK_OIDC_PROVIDERS: a JSON list of providers, or the path of a file holding one.

    Each provider: {"name", "issuer", "client_id", "client_secret", "trusted_audiences": [...],
    "allowed_algorithms": ["RS256", ...], "redirect_uris": [...], "scopes": [...]}; see the README.
    Messages never quote a value, since one may be a secret.
    """
    variable = "FITTRACK_OIDC_PROVIDERS"
    text = raw.strip()
    if not text:
        return ()
    if not text.startswith("["):
        try:
            text = Path(text).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{variable} names a file that cannot be read ({error.strerror})") from None
        variable = f"{variable} (file {raw.strip()})"
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{variable} is not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{variable} must be a JSON list of providers")
    providers = [_provider(entry, index, variable) for index, entry in enumerate(entries)]
    names = [provider.name for provider in providers]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ConfigError(f"{variable}: provider names must be unique; repeated: {', '.join(duplicated)}")
    return tuple(providers)


def _provider(entry: object, index: int, variable: str) -> ProviderSettings:
    where = f"{variable}[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a JSON object")
    unknown = sorted(set(entry) - _PROVIDER_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(_PROVIDER_KEYS))}")

    def text(key: str, required: bool = True) -> str:
        value = entry.get(key, "")
        if not isinstance(value, str) or (required and not value):
            raise ConfigError(f"{where}.{key} must be a non-empty string")
        return value

    def texts(key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = entry.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(each, str) and each for each in value):
            raise ConfigError(f"{where}.{key} must be a list of non-empty strings")
        return tuple(value)

    name = text("name")
    if not PROVIDER_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name must be 1 to 32 characters of a-z, 0-9, '_', '-', starting with a-z or 0-9")
    where = f"{variable} provider {name!r}"
    issuer = text("issuer")
    if not _secure_url(issuer) or urlsplit(issuer).query or urlsplit(issuer).fragment:
        raise ConfigError(f"{where}: issuer must be an https:// URL (http:// only on a loopback address), no query")
    algorithms = texts("allowed_algorithms", ("RS256",))
    refused = [each for each in algorithms if each not in SIGNING_ALGORITHMS]
    if refused or not algorithms:
        raise ConfigError(
            f"{where}: allowed_algorithms must name some of {', '.join(sorted(SIGNING_ALGORITHMS))} "
            "(never HS* or none: a symmetric or missing signature proves nothing about the provider)"
        )
    redirect_uris = texts("redirect_uris")
    if not all(_secure_url(uri) for uri in redirect_uris):
        raise ConfigError(f"{where}: redirect_uris must be https:// URLs, or http:// on a loopback address")
    scopes = texts("scopes", ("openid", "profile", "email"))
    if "openid" not in scopes:
        raise ConfigError(f"{where}: scopes must include openid")
    return ProviderSettings(
        name=name,
        issuer=issuer,
        client_id=text("client_id"),
        client_secret=text("client_secret", required=False),
        trusted_audiences=texts("trusted_audiences"),
        allowed_algorithms=algorithms,
        redirect_uris=redirect_uris,
        scopes=scopes,
    )


def _secure_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
