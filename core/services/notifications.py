"""Reading and marking the user's notifications."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.domain.accounts import Principal, is_id
from core.domain.errors import InvalidArgument, NotFound
from core.ports import AccountsUnitOfWork, NotificationPage

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
