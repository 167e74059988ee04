"""A real OpenID Provider for the SSO tests, and what the tests do with it over plain HTTP.

`LocalProvider` runs infra/oidc/server.mjs (panva/oidc-provider, `make oidc`
installs it) with the machine's Node.js on a free loopback port, with keys the
test made, so that a test can also sign tokens of its own with the provider's
key: real signatures over tampered claims. `authorize` walks the
authorization-code flow the way a browser would: the authorization request,
the provider's login form (development interactions accept any name), the
consent form, and the redirect that carries the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.cookiejar
import json
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support import eventually

REPO_ROOT = Path(__file__).resolve().parents[1]
PROVIDER_DIR = REPO_ROOT / "infra" / "oidc"
CLIENT_ID = "fittrack"
CLIENT_SECRET = "fittrack-test-client-secret"
REDIRECT_URI = "http://127.0.0.1/callback"  # registered without a port: any loopback port works (RFC 8252)


@dataclass
class SigningKey:
    """A private key with its key id, as a JWK for the provider and as an object for PyJWT."""

    kid: str
    private: object
    algorithm: str

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    def private_jwk(self) -> dict:
        algorithm = jwt.algorithms.RSAAlgorithm if self.algorithm.startswith("RS") else jwt.algorithms.ECAlgorithm
        jwk = algorithm.to_jwk(self.private, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_jwk(self) -> dict:
        private_members = {"d", "p", "q", "dp", "dq", "qi"}
        return {name: value for name, value in self.private_jwk().items() if name not in private_members}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict, **header) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict, header: dict) -> str:
    """A JWT with whatever header and signature bytes the test wants, outside PyJWT's own refusals."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def hs256_with(secret: bytes, claims: dict, kid: str) -> str:
    """An HS256 token keyed with `secret`: the RS/HS confusion attack uses the provider's public key here."""
    signing_input = unsigned_token(claims, {"alg": "HS256", "typ": "JWT", "kid": kid})
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class LocalProvider:
    """oidc-provider running as a subprocess on 127.0.0.1; `stop()` ends it."""

    process: subprocess.Popen
    issuer: str
    keys: list[SigningKey]
    stderr: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, workdir: Path, keys: list[SigningKey], clients: list[dict] | None = None) -> LocalProvider:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is needed for the SSO tests (the machine's `node`)")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("oidc-provider is not installed: run `make oidc`")
        workdir.mkdir(parents=True, exist_ok=True)
        clients_file = workdir / "fittrack.clients.json"
        clients_file.write_text(json.dumps(clients if clients is not None else [default_client()]))
        jwks_file = workdir / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [key.private_jwk() for key in keys]}))
        process = subprocess.Popen(
            [node, str(PROVIDER_DIR / "server.mjs"), "--clients", str(clients_file), "--jwks", str(jwks_file)],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stderr: list[str] = []
        threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=30)
        if not first or not first[0].strip():
            process.kill()
            raise RuntimeError(f"the OpenID Provider did not start: {''.join(stderr)[-2000:]}")
        provider = cls(process, json.loads(first[0])["issuer"], keys, stderr)
        eventually(provider._discovery_status, lambda status: status == 200, timeout=30)
        return provider

    def _discovery_status(self) -> int:
        try:
            with urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration", timeout=2) as response:
                return response.status
        except (urllib.error.URLError, OSError) as error:
            return getattr(error, "code", 0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def discovery(self) -> dict:
        with urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration", timeout=5) as response:
            return json.load(response)

    def settings(self, name: str = "local", **overrides) -> dict:
        """This provider as an entry of FITTRACK_OIDC_PROVIDERS."""
        return {
            "name": name,
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [REDIRECT_URI],
            "allowed_algorithms": ["RS256", "ES256"],
            **overrides,
        }

    def claims(self, nonce: str, subject: str = "mallory", **changes) -> dict:
        """The claims of a valid ID token for our client, with `changes` (None removes a claim)."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": nonce}
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}


def default_client() -> dict:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        # Native: a loopback redirect URI may then use any port, which the CLI's listener needs.
        "application_type": "native",
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": "RS256",
    }


@dataclass
class Authorization:
    code: str
    state: str
    redirect_uri: str  # where the provider sent the browser, with the code


def authorize(
    authorization_url: str, login: str, stop_at: str | None = None, follow_final_redirect: bool = False
) -> Authorization | None:
    """Do what a user does in the browser: open the URL, log in as `login`, consent.

    Returns the code and state from the redirect to the client's redirect URI
    (the URL that starts with `stop_at`, by default the authorization request's
    redirect_uri). With `follow_final_redirect` it also requests that URL, as
    a browser would, so that a listening client (the CLI) gets the code, and
    returns None.
    """
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(authorization_url).query)
    stop_at = stop_at or query["redirect_uri"][0].split("?")[0]
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirects())
    url, data = authorization_url, None
    for _ in range(12):
        status, location, body = _request(opener, url, data)
        data = None
        if location:
            url = urllib.parse.urljoin(url, location)
            if url.startswith(stop_at):
                if follow_final_redirect:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        response.read()
                    return None
                params = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
                if "error" in params:
                    raise AssertionError(f"the provider refused: {params}")
                return Authorization(params["code"][0], params.get("state", [""])[0], url)
            continue
        if status != 200 or "/interaction/" not in url:
            raise AssertionError(f"unexpected answer {status} at {url}: {body[:500]}")
        # The development interactions' login form, then their consent form, both posted back to the interaction.
        prompt = "login" if 'name="login"' in body else "consent"
        form = {"prompt": prompt}
        if prompt == "login":
            form.update(login=login, password="any password")
        data = urllib.parse.urlencode(form).encode()
    raise AssertionError("the authorization flow did not end in a redirect to the client")


def _request(opener, url: str, data: bytes | None) -> tuple[int, str | None, str]:
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, response.headers.get("Location"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location"), error.read().decode()


def authorization_url(provider: LocalProvider, nonce: str, challenge: str, state: str = "s") -> str:
    query = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": "openid profile email",
        "redirect_uri": REDIRECT_URI.replace("127.0.0.1", "127.0.0.1:43210"),
        "nonce": nonce,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return provider.discovery()["authorization_endpoint"] + "?" + urllib.parse.urlencode(query)


def redeem(provider: LocalProvider, code: str, verifier: str, redirect_uri: str) -> dict:
    """The token endpoint's answer for a code, as the client itself would get it (client_secret_basic)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    request = urllib.request.Request(
        provider.discovery()["token_endpoint"],
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Basic {credentials}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
