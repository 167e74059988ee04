"""Clean-up of what the account database keeps only for a while: hourly, and every minute for one table.

Failed-login records of names nobody logs in with again (most are attackers'
guesses at names that do not exist) would otherwise pile up for ever: once a
record's last failure is older than the throttle's forget_after, the throttle
treats it as absent anyway, so deleting it changes no decision.

Failed logins per address count for a minute (AddressPolicy.window): at
each minute's first tick every older one goes, so the table holds about a
minute's failures (recording a failure also deletes that address's old ones).

Evaluation claims go two days after their lease ended: by then their slot
is past taking over (EvaluationSettings.retry_for), finished or not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from fittrack.core.domain.throttle import AddressPolicy, ThrottlePolicy
from fittrack.core.ports import AccountsUnitOfWork

log = logging.getLogger(__name__)

KEEP_EVALUATION_CLAIMS = timedelta(days=2)


class Housekeeping:
    def __init__(
        self,
        uow: Callable[[], AccountsUnitOfWork],
        policy: ThrottlePolicy,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self._uow = uow
        self._policy = policy
        self._address_policy = address_policy or AddressPolicy()

    def run_due(self, since: datetime, until: datetime) -> int:
        """Clean up when (since, until] crosses the start of a minute (and more at an hour's). How many rows went."""
        minute = until.replace(second=0, microsecond=0)
        if not since < minute <= until:
            return 0
        hour = until.replace(minute=0, second=0, microsecond=0)
        hourly = since < hour <= until
        forgotten = claims = 0
        with self._uow() as uow:
            addresses = uow.address_failures.forget_before(self._address_policy.forget_before(until))
            if hourly:
                forgotten = uow.login_failures.forget_before(until - self._policy.forget_after)
                claims = uow.evaluation_claims.forget_before(until - KEEP_EVALUATION_CLAIMS)
            uow.commit()
        if forgotten:
            log.info("forgot %d stale failed-login records", forgotten)
        if claims:
            log.info("forgot %d old evaluation claims", claims)
        return addresses + forgotten + claims
