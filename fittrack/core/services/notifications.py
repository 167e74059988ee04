"""Reading and marking the user's notifications."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import time

from fittrack.core.domain.accounts import Principal, is_id
from fittrack.core.domain.errors import InvalidArgument, NotFound
from fittrack.core.domain.notifications import NotificationPreferences
from fittrack.core.ports import AccountsUnitOfWork, NotificationPage

DEFAULT_PAGE = 50
MAX_PAGE = 100


class Notifications:
    def __init__(self, uow: Callable[[], AccountsUnitOfWork]) -> None:
        self._uow = uow

    def page(self, principal: Principal, unread_only: bool, page_size: int, page_token: str) -> NotificationPage:
        if page_size > MAX_PAGE:
            raise InvalidArgument(f"page_size must be at most {MAX_PAGE}, got {page_size}")
        before = None
        if page_token:
            if not (page_token.isascii() and page_token.isdigit() and len(page_token) <= 18):
                raise InvalidArgument("page_token is not one this server gave out; omit it for the first page")
            before = int(page_token)
        with self._uow() as uow:
            return uow.notifications.page(principal.user_id, unread_only, page_size or DEFAULT_PAGE, before)

    def mark_read(self, principal: Principal, notification_ids: Sequence[str]) -> int:
        if not notification_ids:
            raise InvalidArgument("notification_ids is empty; name at least one notification")
        if len(notification_ids) > MAX_PAGE:
            raise InvalidArgument(f"mark at most {MAX_PAGE} notifications at once")
        malformed = next((i for i in notification_ids if not is_id(i)), None)
        if malformed is not None:
            raise NotFound(f"you have no notification {malformed[:64]!r}; nothing was marked")
        with self._uow() as uow:
            marked = uow.notifications.mark_read(principal.user_id, list(dict.fromkeys(notification_ids)))
            uow.commit()
        return marked

    def preferences(self, principal: Principal) -> NotificationPreferences:
        with self._uow() as uow:
            return uow.preferences.get(principal.user_id)

    def update_preferences(
        self,
        principal: Principal,
        enabled: bool | None,
        quiet_start: time | None,
        quiet_end: time | None,
        clear_quiet_hours: bool,
    ) -> NotificationPreferences:
        if (quiet_start is None) != (quiet_end is None):
            raise InvalidArgument("quiet hours need both quiet_start and quiet_end; set both, or clear_quiet_hours")
        if clear_quiet_hours and quiet_start is not None:
            raise InvalidArgument("either set quiet hours or clear them, not both")
        if quiet_start is not None and quiet_start == quiet_end:
            raise InvalidArgument(
                f"quiet hours from {quiet_start:%H:%M} to {quiet_end:%H:%M} are empty; "
                "use clear_quiet_hours to have none"
            )
        if enabled is None and quiet_start is None and not clear_quiet_hours:
            raise InvalidArgument("nothing to change: set enabled, the quiet hours, or clear_quiet_hours")
        with self._uow() as uow:
            current = uow.preferences.get(principal.user_id)
            changed = replace(current, enabled=current.enabled if enabled is None else enabled)
            if quiet_start is not None or clear_quiet_hours:
                changed = replace(changed, quiet_start=quiet_start, quiet_end=quiet_end)
            uow.preferences.put(changed)
            uow.commit()
        return changed
