"""Channels to a Fittrack server: plaintext, TLS, or mutual TLS, from command-line options or the environment.

Every client (the CLI, the simulator, the load generator, device code using fittrack.clients.sync) makes its channels
here, so they all take the same options: `--tls` (or a `grpcs://`/`https://` address), `--ca-file` to trust a
private CA, `--cert-file`/`--key-file` for a client certificate where the server asks for one (mutual TLS).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

TLS_SCHEMES = ("grpcs://", "https://")
PLAIN_SCHEMES = ("grpc://", "http://")
Options = Sequence[tuple[str, object]]

# A person's command waiting for a server that restarts: gRPC's reconnect backoff grows to 120 s by default, so
# a channel kept open through a few seconds' outage (`fittrack notifications watch`) would go on failing for
# tens of seconds after the server is back. Capped at 1 s, it tries again about once a second. The minimum
# connect timeout (grpc.min_reconnect_backoff_ms) stays at its default: lowering it would cut short a TLS
# handshake over a slow link.
QUICK_RECONNECT: Options = (("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 1000))


class ChannelError(ValueError):
    """A server address or TLS option is unusable; the message says which and why."""


@dataclass(frozen=True)
class Security:
    """How to reach the server. TLS when `tls` is set or any file is given; otherwise plaintext."""

    tls: bool = False
    ca_file: str = ""  # PEM of the CA that signed the server's certificate; empty: the system's trusted roots
    cert_file: str = ""  # PEM client certificate (chain), for servers that require one
    key_file: str = ""

    @property
    def secure(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file or self.key_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Security:
        env = os.environ if env is None else env
        return cls(
            tls=env.get("FITTRACK_TLS", "").lower() in ("1", "true", "yes"),
            ca_file=env.get("FITTRACK_CA_FILE", ""),
            cert_file=env.get("FITTRACK_CLIENT_CERT_FILE", ""),
            key_file=env.get("FITTRACK_CLIENT_KEY_FILE", ""),
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Security:
        """The options given on the command line, each falling back to its environment variable."""
        fallback = cls.from_env(env)
        return cls(
            tls=bool(getattr(args, "tls", False)) or fallback.tls,
            ca_file=getattr(args, "ca_file", None) or fallback.ca_file,
            cert_file=getattr(args, "cert_file", None) or fallback.cert_file,
            key_file=getattr(args, "key_file", None) or fallback.key_file,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert_file) != bool(self.key_file):
            raise ChannelError("a client certificate needs both --cert-file and --key-file")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "--ca-file"),
            private_key=_read(self.key_file, "--key-file"),
            certificate_chain=_read(self.cert_file, "--cert-file"),
        )


PLAINTEXT = Security()


def split_target(address: str, security: Security = PLAINTEXT) -> tuple[str, Security]:
    """HOST:PORT without its scheme, and the security it asks for: a grpcs:// or https:// address means TLS."""
    lowered = address.lower()
    for scheme in TLS_SCHEMES:
        if lowered.startswith(scheme):
            return check_target(address[len(scheme) :].rstrip("/")), dataclasses.replace(security, tls=True)
    for scheme in PLAIN_SCHEMES:
        if lowered.startswith(scheme):
            return check_target(address[len(scheme) :].rstrip("/")), security
    return check_target(address), security


def check_target(target: str) -> str:
    """HOST:PORT (or [IPv6]:PORT) with a port gRPC will really use.

    gRPC takes a port above 65535 modulo 65536 and a missing one as 443, so `127.0.0.1:99999` would quietly
    reach another port and `localhost` the HTTPS one. Of gRPC's own target forms, `unix:` paths pass as
    they are, `dns:///` has its HOST:PORT checked, `ipv4:` and `ipv6:` each of their comma-separated
    HOST:PORTs (a client that knows several balancers, as on the cluster), and other schemes are refused.
    """
    if target.startswith("unix:"):
        return target
    if target.startswith("dns:///"):
        check_target(target[len("dns:///") :])
        return target
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            for address in target[len(scheme) :].split(","):
                check_target(address)
            return target
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise ChannelError(
            f"{target!r} has a scheme Fittrack does not speak ({scheme}); give HOST:PORT or grpcs://HOST:PORT"
        )
    host, separator, port = target.rpartition(":")
    if not separator or not host:
        raise ChannelError(f"{target!r} is not a server address; give HOST:PORT, e.g. 127.0.0.1:50051")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ChannelError(f"{target!r} is ambiguous; write an IPv6 address in brackets, e.g. [::1]:50051")
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ChannelError(f"{target!r} has no valid port; a port is a number from 1 to 65535")
    return target


LOCAL_HOSTS = ("127.", "localhost", "[::1]", "0.0.0.0")


def explain_unavailable(address: str, security: Security, details: str) -> tuple[str, list[str]]:
    """What an UNAVAILABLE from `address` means for the user, and hints on what to do, in plain words."""
    target, security = split_target(address, security)
    secure = security.secure
    lowered = details.lower()
    if "handshake" in lowered or "ssl" in lowered or "tsi_" in lowered:
        if secure and "wrong_version_number" in lowered:
            return f"the server at {address} does not speak TLS", [
                "drop grpcs:// and --tls (and $FITTRACK_TLS) to connect in plaintext"
            ]
        if secure:
            return f"the TLS handshake with {address} failed: {details}", [
                "check --ca-file: it must hold the CA that signed the server's certificate"
            ]
        return f"the server at {address} expects TLS", ["connect with grpcs://HOST:PORT, or --tls and --ca-file"]
    if any(sign in lowered for sign in ("dns resolution failed", "domain name not found", "name or service not known")):
        return f"cannot find the host of {address}", ["check the host name in --server or $FITTRACK_SERVER"]
    if "connection refused" in lowered:
        # `make run` is only advice for a server on this machine.
        local = target.startswith(LOCAL_HOSTS)
        return f"no Fittrack server answers at {address}", [
            f"is the Fittrack server running at {address}?" + (" Start one with `make run`" if local else "")
        ]
    if "http2" in lowered or "http/2" in lowered or "frame" in lowered:
        return f"something answers at {address}, but it does not speak gRPC", [
            "check the port: a Fittrack server listens on FITTRACK_LISTEN (default 127.0.0.1:50051)"
        ]
    # Something answered and hung up, or the network failed on the way: a plaintext client at a TLS
    # server looks like this too, so say what gRPC saw and name the likely causes.
    hints = [f"check that the Fittrack server at {address} is up"]
    if not secure:
        hints.append("a server that serves TLS needs grpcs://HOST:PORT, --tls or --ca-file")
    return f"the connection to {address} failed: {details}", hints


def secure_channel(address: str, security: Security = PLAINTEXT, options: Options = ()) -> grpc.Channel:
    """A blocking channel to `address` (HOST:PORT, or with a scheme), plaintext or TLS as `security` says."""
    target, security = split_target(address, security)
    if not security.secure:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(target, security.credentials(), options=list(options))


def aio_channel(address: str, security: Security = PLAINTEXT, options: Options = ()) -> grpc.aio.Channel:
    """The asyncio counterpart of secure_channel."""
    target, security = split_target(address, security)
    if not security.secure:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(target, security.credentials(), options=list(options))


def add_tls_options(parser: argparse.ArgumentParser, suppress_defaults: bool = False) -> None:
    """--tls, --ca-file, --cert-file, --key-file; `suppress_defaults` for options repeated after a subcommand."""
    default = {"default": argparse.SUPPRESS} if suppress_defaults else {}
    parser.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, trusting the system's CAs unless --ca-file is given "
        "(default: $FITTRACK_TLS; a grpcs:// server address means TLS too)",
        **default,
    )
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA certificate(s) to verify the server with; implies --tls (default: $FITTRACK_CA_FILE)",
        **default,
    )
    parser.add_argument(
        "--cert-file",
        metavar="PEM",
        help="client certificate, for a server that requires one (default: $FITTRACK_CLIENT_CERT_FILE)",
        **default,
    )
    parser.add_argument(
        "--key-file",
        metavar="PEM",
        help="the client certificate's private key (default: $FITTRACK_CLIENT_KEY_FILE)",
        **default,
    )


def _read(path: str, option: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ChannelError(f"{option}: cannot read {path} ({error.strerror})") from None
