from __future__ import annotations

import asyncio

from core.services.accounts import Accounts
from generated.fittrack.v1 import account_pb2, account_pb2_grpc
from server import mapping
from server.auth import current_principal, optional_principal


class AccountServicer(account_pb2_grpc.AccountServiceServicer):
    def __init__(self, accounts: Accounts, today) -> None:
        self._accounts = accounts
        self._today = today

    async def Register(self, request, context):
        changes = mapping.profile_changes(request.profile)
        account = await asyncio.to_thread(self._accounts.register, request.username, request.password, changes)
        return account_pb2.RegisterResponse(profile=mapping.profile(account, self._today()))

    async def Login(self, request, context):
        session = await asyncio.to_thread(self._accounts.login, request.username, request.password)
        return mapping.session(session)

    async def LoginSSO(self, request, context):
        return mapping.session(self._accounts.login_sso())

    async def RefreshToken(self, request, context):
        return mapping.session(await asyncio.to_thread(self._accounts.refresh, request.refresh_token))

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
        )
        return account_pb2.ChangePasswordResponse(password_expires_at=mapping.timestamp(expires))

    async def DeleteAccount(self, request, context):
        await asyncio.to_thread(self._accounts.delete_account, current_principal(), request.password)
        return account_pb2.DeleteAccountResponse()
