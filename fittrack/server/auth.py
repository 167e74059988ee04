"""Bearer-token authentication for every RPC outside a short allowlist."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

import grpc

from fittrack.core.domain.accounts import Principal
from fittrack.core.domain.errors import Unauthenticated
from fittrack.server.interception import HandlerWrapper

PUBLIC_METHODS = frozenset(
    {
        "/fittrack.v1.AccountService/Register",
        "/fittrack.v1.AccountService/Login",
        "/fittrack.v1.AccountService/LoginSSO",
        # What a client needs to start an SSO login (issuer, client id), asked before there is a token.
        "/fittrack.v1.AccountService/ListSSOProviders",
        "/fittrack.v1.AccountService/RefreshToken",
    }
)
# Allowed without a token because an expired password blocks Login: the
# request then authenticates with the username and current password instead.
OPTIONAL_TOKEN_METHODS = frozenset({"/fittrack.v1.AccountService/ChangePassword"})

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The authenticated caller of the RPC being served."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("this call needs `authorization: Bearer <access token>` metadata; log in first")
    return principal


def optional_principal() -> Principal | None:
    return _principal.get()


class AuthInterceptor(HandlerWrapper):
    def __init__(self, authenticate: Callable[[str], Principal]) -> None:
        self._authenticate = authenticate

    async def before(self, method: str, context: grpc.aio.ServicerContext) -> None:
        _principal.set(None)
        if method in PUBLIC_METHODS:
            return
        header = _authorization(context)
        if header is None and method in OPTIONAL_TOKEN_METHODS:
            return
        if header is None:
            raise Unauthenticated("this call needs `authorization: Bearer <access token>` metadata; log in first")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata must read `Bearer <access token>`")
        principal = await asyncio.to_thread(self._authenticate, token.strip())
        _principal.set(principal)


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None
