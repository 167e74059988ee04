from __future__ import annotations

import asyncio
import functools

from fittrack.core.services.accounts import Accounts
from fittrack.generated.v1 import account_pb2, account_pb2_grpc
from fittrack.server import mapping
from fittrack.server.auth import current_principal, optional_principal
from fittrack.server.ratelimit import Network, client_address


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    def __init__(self, accounts: Accounts, today, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self._accounts = accounts
        self._today = today
        self._trusted_proxies = trusted_proxies

    def _address(self, context) -> str:
        """The caller's address, which failed password checks count against (Accounts refuses when over)."""
        return client_address(context.peer(), context.invocation_metadata(), self._trusted_proxies)

    async def Register(self, request, context):
        changes = mapping.profile_changes(request.profile)
        account = await asyncio.to_thread(self._accounts.register, request.username, request.password, changes)
        return account_pb2.RegisterResponse(profile=mapping.profile(account, self._today()))

    async def Login(self, request, context):
        session = await asyncio.to_thread(
            self._accounts.login, request.username, request.password, self._address(context)
        )
        return mapping.session(session)

    async def LoginSSO(self, request, context):
        login = functools.partial(
            self._accounts.login_sso,
            request.provider,
            id_token=request.id_token,
            authorization_code=request.authorization_code,
            code_verifier=request.code_verifier,
            redirect_uri=request.redirect_uri,
            nonce=request.nonce,
            address=self._address(context),
        )
        return mapping.session(await asyncio.to_thread(login))

    async def ListSSOProviders(self, request, context):
        return mapping.sso_providers(self._accounts.sso_providers())

    async def RefreshToken(self, request, context):
        refreshed = await asyncio.to_thread(self._accounts.refresh, request.refresh_token, self._address(context))
        return mapping.session(refreshed)

    async def Logout(self, request, context):
        await asyncio.to_thread(self._accounts.logout, current_principal())
        return account_pb2.LogoutResponse()

    async def GetProfile(self, request, context):
        account = await asyncio.to_thread(self._accounts.profile, current_principal())
        return mapping.profile(account, self._today())

    async def UpdateProfile(self, request, context):
        changes = mapping.profile_changes(request.profile)
        account = await asyncio.to_thread(self._accounts.update_profile, current_principal(), changes)
        return mapping.profile(account, self._today())

    async def ChangePassword(self, request, context):
        expires = await asyncio.to_thread(
            self._accounts.change_password,
            optional_principal(),
            request.username,
            request.current_password,
            request.new_password,
            self._address(context),
        )
        return account_pb2.ChangePasswordResponse(password_expires_at=mapping.timestamp(expires))

    async def DeleteAccount(self, request, context):
        await asyncio.to_thread(
            self._accounts.delete_account, current_principal(), request.password, self._address(context)
        )
        return account_pb2.DeleteAccountResponse()
