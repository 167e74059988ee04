"""Signed access tokens (JWT, HMAC-SHA256)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from core.domain.errors import Unauthenticated
from core.ports import AccessClaims, TokenSigner

ISSUER = "fittrack"
AUDIENCE = "fittrack-api"
TOKEN_TYPE = "access"


class JwtSigner(TokenSigner):
    def __init__(self, secret: bytes, ttl: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        self._secret = secret
        self._ttl = ttl

    def issue(self, user_id: str, session_id: str, now: datetime) -> tuple[str, datetime]:
        expires = now + self._ttl
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "sid": session_id,
            "typ": TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires

    def verify(self, token: str, now: datetime) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # The allowlist is what stops "alg: none" and algorithm confusion.
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked against the injected clock below, not
                # PyJWT's wall clock (which would also reject a token from a
                # server whose clock runs a second ahead).
                options={"require": ["exp", "iat", "sub", "sid", "typ"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise Unauthenticated("the access token is malformed or its signature is wrong; log in again") from None
        if claims["typ"] != TOKEN_TYPE:
            raise Unauthenticated("this is not an access token")
        expires = datetime.fromtimestamp(claims["exp"], UTC)
        if now >= expires:
            raise Unauthenticated("the access token has expired; refresh it or log in again")
        return AccessClaims(user_id=claims["sub"], session_id=claims["sid"], expires_at=expires)
