"""The stored login: one JSON file in the user's config directory, readable by its owner only."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fittrack.clients.channel import PLAINTEXT, Security
from fittrack.clients.cli.errors import EXIT_USAGE, CliError
from fittrack.generated.v1 import account_pb2

try:
    import fcntl
except ImportError:  # Windows: concurrent refreshes are then not serialised
    fcntl = None

# Refresh a little before the stored expiry, in case this machine's clock runs behind the server's.
CLOCK_SKEW = timedelta(seconds=60)
Metadata = list[tuple[str, str]]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "fittrack"


def session_path() -> Path:
    return config_dir() / "session.json"


@dataclass
class Session:
    server: str
    username: str
    user_id: str
    access_token: str
    access_token_expires_at: str
    refresh_token: str
    refresh_token_expires_at: str
    password_expires_at: str = ""
    # How the server was reached at login (TLS and the files to use), so later commands need not repeat it.
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_login(
        cls, server: str, username: str, login: account_pb2.LoginResponse, security: Security = PLAINTEXT
    ) -> Session:
        return cls(
            server=server,
            username=username,
            tls=security.tls,
            ca_file=_absolute(security.ca_file),
            cert_file=_absolute(security.cert_file),
            key_file=_absolute(security.key_file),
            user_id=login.user_id,
            access_token=login.access_token,
            access_token_expires_at=_iso(login.access_token_expires_at),
            refresh_token=login.refresh_token,
            refresh_token_expires_at=_iso(login.refresh_token_expires_at),
            password_expires_at=_iso(login.password_expires_at) if login.HasField("password_expires_at") else "",
        )

    def access_token_expired(self) -> bool:
        return datetime.now(UTC) + CLOCK_SKEW >= datetime.fromisoformat(self.access_token_expires_at)

    @property
    def metadata(self) -> Metadata:
        return [("authorization", f"Bearer {self.access_token}")]

    @property
    def security(self) -> Security:
        return Security(self.tls, self.ca_file, self.cert_file, self.key_file)


def _absolute(path: str) -> str:
    return str(Path(path).resolve()) if path else ""


def _iso(stamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat()


class DamagedSession(CliError):
    """The session file cannot be used; logging in again replaces it."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"the session file {session_path()} cannot be used ({reason})",
            EXIT_USAGE,
            "log in again with `fittrack login USERNAME`; that replaces the file",
        )


_REQUIRED = {field.name for field in fields(Session) if field.default is MISSING}
_KNOWN = {field.name for field in fields(Session)}
_INSTANTS = ("access_token_expires_at", "refresh_token_expires_at")


def load_session() -> Session | None:
    """The stored session; None when there is none. A file that cannot be used raises DamagedSession."""
    try:
        data = json.loads(session_path().read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, UnicodeDecodeError) as error:
        raise DamagedSession(f"not JSON: {error}") from None
    except OSError as error:
        raise DamagedSession(error.strerror) from None
    if not isinstance(data, dict):
        raise DamagedSession("not a JSON object")
    if missing := _REQUIRED - data.keys():
        raise DamagedSession(f"it lacks {', '.join(sorted(missing))}")
    # Keys a newer fittrack may add are ignored, so one version's file does not lock out another.
    session = Session(**{key: value for key, value in data.items() if key in _KNOWN})
    for name in _INSTANTS:
        try:
            instant = datetime.fromisoformat(getattr(session, name))
        except (TypeError, ValueError):
            raise DamagedSession(f"{name} is not a time") from None
        if instant.tzinfo is None:
            raise DamagedSession(f"{name} has no UTC offset")
    return session


def load_session_or_none() -> Session | None:
    """The stored session, treating a damaged file as none: for commands that replace or remove it."""
    try:
        return load_session()
    except DamagedSession:
        return None


def check_writable() -> None:
    """Fail before logging in, not after, when the session could not be kept: a login whose tokens
    cannot be stored would leave a session on the server that nobody can end."""
    try:
        _make_config_dir()
        with tempfile.TemporaryFile(dir=config_dir()):
            pass
    except OSError as error:
        raise _unwritable(error) from None


def save_session(session: Session) -> Path:
    """Write the session so that only this user can read it, replacing the old one in one step."""
    _write_private(session_path(), asdict(session))
    return session_path()


def _write_private(path: Path, data: object) -> None:
    """Write JSON that only this user can read, replacing `path` in one step."""
    try:
        _make_config_dir()
        # mkstemp creates the file with mode 0600, so the tokens are never readable by others, not even briefly.
        descriptor, temporary = tempfile.mkstemp(dir=config_dir(), prefix=f".{path.stem}-", suffix=".json")
    except OSError as error:
        raise _unwritable(error) from None
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump(data, file, indent=2)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _unwritable(error) from None
        raise


def remove_session() -> None:
    with contextlib.suppress(FileNotFoundError):
        session_path().unlink()


# --- sessions this machine let go of while their server could not be reached ---


def forgotten_path() -> Path:
    return config_dir() / "forgotten-sessions.json"


def remember_forgotten(session: Session) -> None:
    """Keep the tokens of a session forgotten here but still valid on its server (`logout --local`, or a
    login that could not end the one it replaced), so that a later contact can end it there."""
    with session_lock():
        pending = [kept for kept in _load_forgotten() if kept.refresh_token != session.refresh_token]
        _write_private(forgotten_path(), [asdict(kept) for kept in [*pending, session]])


def end_forgotten(end: Callable[[Session], bool]) -> None:
    """End each forgotten session on its server with `end` (True: it is over there); keep the others for the
    next time. One whose refresh token has expired is over anyway.

    `end` calls servers, which may not answer for seconds: it runs outside the session lock, so other
    fittrack commands do not wait on it; the file is then rewritten under the lock with what is left,
    keeping anything another command added meanwhile."""
    with session_lock():
        pending = _load_forgotten()
    if not pending:
        return
    now = datetime.now(UTC)
    over = {
        session.refresh_token
        for session in pending
        if datetime.fromisoformat(session.refresh_token_expires_at) <= now or end(session)
    }
    with session_lock():
        left = [session for session in _load_forgotten() if session.refresh_token not in over]
        if left:
            _write_private(forgotten_path(), [asdict(session) for session in left])
        else:
            forgotten_path().unlink(missing_ok=True)


def _load_forgotten() -> list[Session]:
    """The forgotten sessions; an entry (or a file) that cannot be read is skipped: it can end nothing."""
    try:
        entries = json.loads(forgotten_path().read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    sessions = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or _REQUIRED - entry.keys():
            continue
        session = Session(**{key: value for key, value in entry.items() if key in _KNOWN})
        try:
            moments = [datetime.fromisoformat(session.refresh_token_expires_at)]
            moments.append(datetime.fromisoformat(session.access_token_expires_at))
        except (TypeError, ValueError):
            continue
        if all(moment.tzinfo is not None for moment in moments):
            sessions.append(session)
    return sessions


def _make_config_dir() -> None:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)


def _unwritable(error: OSError) -> CliError:
    return CliError(
        f"cannot write the session to {config_dir()}: {error.strerror}",
        hint="make that directory writable, or point $XDG_CONFIG_HOME at one that is",
    )


@contextlib.contextmanager
def session_lock() -> Iterator[None]:
    """Serialise refreshes across fittrack processes: refresh tokens work once, and the server
    ends the whole session when a used one comes back, so two scripts must not race with the same token."""
    if fcntl is None:
        yield
        return
    try:
        _make_config_dir()
        lock = open(config_dir() / "session.lock", "a")  # noqa: SIM115 - held across the yield
    except OSError as error:
        raise _unwritable(error) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
