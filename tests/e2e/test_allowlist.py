"""Every RPC needs a valid access token except a short, explicit allowlist.

The RPCs are enumerated from the generated descriptors, so an RPC added to any fittrack.v1 service is
covered without touching this file: it must refuse callers without a token, or be added to the allowlist
in fittrack/server/auth.py and here, deliberately.
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import Iterator

import grpc
import jwt
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

import fittrack.generated.v1
from fittrack.generated.v1 import account_pb2
from fittrack.server.auth import OPTIONAL_TOKEN_METHODS, PUBLIC_METHODS
from tests.support import PASSWORD, register_and_login, rpc_error

# Written out rather than imported: widening the allowlist must change this test too.
PUBLIC = {
    "/fittrack.v1.AccountService/Register",
    "/fittrack.v1.AccountService/Login",
    "/fittrack.v1.AccountService/LoginSSO",
    "/fittrack.v1.AccountService/ListSSOProviders",
    "/fittrack.v1.AccountService/RefreshToken",
}
TOKEN_OPTIONAL = {"/fittrack.v1.AccountService/ChangePassword"}
DEADLINE = 10


def all_methods() -> dict[str, MethodDescriptor]:
    """Every RPC of every service in the fittrack.v1 package, by its full path."""
    methods = {}
    for module_info in pkgutil.iter_modules(fittrack.generated.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{fittrack.generated.v1.__name__}.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


METHODS = all_methods()
PROTECTED = sorted(set(METHODS) - PUBLIC - TOKEN_OPTIONAL)


def call(channel: grpc.Channel, path: str, metadata: list[tuple[str, str]]) -> None:
    """Call `path` with an empty request (a stream of one), reading the whole answer."""
    method = METHODS[path]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    codecs = {"request_serializer": request_class.SerializeToString, "response_deserializer": response_class.FromString}
    options = {"metadata": metadata, "timeout": DEADLINE}

    def one_request() -> Iterator:
        yield request_class()

    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path, **codecs)(one_request(), **options))
    elif method.client_streaming:
        channel.stream_unary(path, **codecs)(one_request(), **options)
    elif method.server_streaming:
        list(channel.unary_stream(path, **codecs)(request_class(), **options))
    else:
        channel.unary_unary(path, **codecs)(request_class(), **options)


def forged(token: str) -> str:
    """The same claims and key id, signed with a secret the server does not have."""
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256", headers={"kid": header["kid"]})


def test_the_allowlist_is_exactly_the_methods_listed_here_and_they_exist():
    assert set(PUBLIC_METHODS) == PUBLIC
    assert set(OPTIONAL_TOKEN_METHODS) == TOKEN_OPTIONAL
    assert set(METHODS) >= PUBLIC | TOKEN_OPTIONAL


def test_the_enumeration_covers_every_kind_of_call():
    kinds = {(METHODS[path].client_streaming, METHODS[path].server_streaming) for path in PROTECTED}

    assert kinds == {(False, False), (True, False), (False, True), (True, True)}


@pytest.mark.parametrize("path", PROTECTED)
def test_a_call_without_a_token_is_unauthenticated(stubs, path):
    error = rpc_error(lambda: call(stubs.channel, path, []))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert "authorization: Bearer" in error.details()


@pytest.mark.parametrize("path", PROTECTED)
def test_a_malformed_or_forged_token_is_unauthenticated(stubs, alice, path):
    token = alice.login.access_token
    for header in (
        "Bearer not-a-jwt",
        "Bearer " + token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "Bearer " + forged(token),
        "Basic " + token,
        "Bearer",
    ):
        error = rpc_error(lambda header=header: call(stubs.channel, path, [("authorization", header)]))

        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (header[:12], error.details())


def test_the_public_account_calls_work_without_a_token(stubs, new_username):
    username = new_username("public")
    stubs.accounts.Register(account_pb2.RegisterRequest(username=username, password=PASSWORD))
    login = stubs.accounts.Login(account_pb2.LoginRequest(username=username, password=PASSWORD))
    refreshed = stubs.accounts.RefreshToken(account_pb2.RefreshTokenRequest(refresh_token=login.refresh_token))
    stubs.accounts.ListSSOProviders(account_pb2.ListSSOProvidersRequest())

    assert refreshed.access_token
    assert refreshed.refresh_token != login.refresh_token


def test_login_sso_without_a_token_is_judged_on_its_request_not_refused_for_the_missing_token(stubs):
    error = rpc_error(lambda: stubs.accounts.LoginSSO(account_pb2.LoginSSORequest(), timeout=DEADLINE))

    assert error.code() != grpc.StatusCode.UNAUTHENTICATED, error.details()


def test_a_password_changes_without_a_token_given_the_username_and_current_password(stubs, new_username):
    user = register_and_login(stubs, new_username("expired"))
    request = account_pb2.ChangePasswordRequest(
        username=user.username, current_password=PASSWORD, new_password="a brand new passphrase"
    )

    stubs.accounts.ChangePassword(request, timeout=DEADLINE)

    again = stubs.accounts.Login(account_pb2.LoginRequest(username=user.username, password="a brand new passphrase"))
    assert again.access_token


def test_a_password_change_without_a_token_or_the_current_password_is_unauthenticated(stubs, alice):
    request = account_pb2.ChangePasswordRequest(
        username=alice.username, current_password="not the password", new_password="a brand new passphrase"
    )

    error = rpc_error(lambda: stubs.accounts.ChangePassword(request, timeout=DEADLINE))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stubs.accounts.Login(account_pb2.LoginRequest(username=alice.username, password=PASSWORD)).access_token
