"""The browser part of `fittrack login --sso NAME`: OAuth 2.0 for native apps (RFC 8252) with PKCE (RFC 7636).

The CLI asks the server for the provider's issuer and client id
(ListSSOProviders), builds the authorization request with an S256 code
challenge, a nonce and a state, and listens on a loopback port for the
redirect that brings the code back. The server, which holds the client
secret, redeems the code (LoginSSO) and checks the ID token; the CLI never
sees a token from the provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

CALLBACK_PATH = "/callback"
DONE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>Fittrack</title>
<p>Fittrack received the login; you can close this window and go back to the terminal.</p>"""


class SsoError(Exception):
    """The login could not be completed; the message says why."""


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    redirect_uri: str
    state: str
    nonce: str
    code_verifier: str


def discover(issuer: str, timeout: float) -> dict:
    """The provider's discovery document (OpenID Connect Discovery 1.0)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise SsoError(f"cannot read the provider's discovery document at {url}: {error}") from None
    if document.get("issuer") != issuer or not isinstance(document.get("authorization_endpoint"), str):
        raise SsoError(f"the discovery document at {url} does not describe the issuer {issuer}")
    return document


def authorization_request(
    authorization_endpoint: str, client_id: str, scopes: list[str], redirect_uri: str
) -> AuthorizationRequest:
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43 to 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes or ["openid"]),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    separator = "&" if urllib.parse.urlsplit(authorization_endpoint).query else "?"
    url = authorization_endpoint + separator + urllib.parse.urlencode(query)
    return AuthorizationRequest(url, redirect_uri, state, nonce, verifier)


class LoopbackListener:
    """An HTTP listener on 127.0.0.1 and a free port that takes the one redirect carrying the code."""

    def __init__(self) -> None:
        self._received = threading.Event()
        self.params: dict[str, str] = {}
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                parts = urllib.parse.urlsplit(self.path)
                if parts.path != CALLBACK_PATH or listener._received.is_set():
                    self.send_error(404)
                    return
                listener.params = {key: values[0] for key, values in urllib.parse.parse_qs(parts.query).items()}
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(DONE_PAGE)))
                self.end_headers()
                self.wfile.write(DONE_PAGE)
                listener._received.set()

            def log_message(self, *args):
                pass  # the query string holds the code: it stays out of the terminal

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}{CALLBACK_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> dict[str, str]:
        if not self._received.wait(timeout):
            raise SsoError(f"no login came back within {timeout:.0f} seconds")
        return self.params

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def code_from(params: dict[str, str], expected_state: str) -> str:
    """The authorization code of the redirect, after checking it answers our own request (state)."""
    if not secrets.compare_digest(params.get("state", ""), expected_state):
        raise SsoError("the redirect's state does not match this login's; ignoring it (start the login again)")
    if "error" in params:
        description = params.get("error_description", "")
        raise SsoError(f"the provider refused the login: {params['error']}{f' ({description})' if description else ''}")
    code = params.get("code", "")
    if not code:
        raise SsoError("the redirect carried no authorization code")
    return code
