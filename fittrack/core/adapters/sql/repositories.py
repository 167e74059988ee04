"""The account repositories of one transaction, for either engine's unit of work to hand out."""

from __future__ import annotations

from fittrack.core.adapters.sql.dialect import Sql
from fittrack.core.adapters.sql.goals import SqlGoals
from fittrack.core.adapters.sql.notifications import SqlDeliveries, SqlNotifications, SqlPreferences
from fittrack.core.adapters.sql.security import (
    SqlAddressFailures,
    SqlEvaluationClaims,
    SqlIdentities,
    SqlLoginFailures,
)
from fittrack.core.adapters.sql.users import SqlSessions, SqlUsers
from fittrack.core.ports import AccountsUnitOfWork


def attach_repositories(uow: AccountsUnitOfWork, sql: Sql) -> None:
    """Give the unit of work its repositories, all on the one transaction `sql`."""
    uow.users = SqlUsers(sql)
    uow.sessions = SqlSessions(sql)
    uow.goals = SqlGoals(sql)
    uow.notifications = SqlNotifications(sql)
    uow.preferences = SqlPreferences(sql)
    uow.deliveries = SqlDeliveries(sql)
    uow.login_failures = SqlLoginFailures(sql)
    uow.address_failures = SqlAddressFailures(sql)
    uow.identities = SqlIdentities(sql)
    uow.evaluation_claims = SqlEvaluationClaims(sql)
