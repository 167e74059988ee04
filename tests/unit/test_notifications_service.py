"""Listing notifications page by page and marking them read."""

import hashlib
from datetime import timedelta

import pytest

from fittrack.core.domain.errors import InvalidArgument, NotFound
from fittrack.core.domain.notifications import Notification, NotificationKind
from tests.unit.fakes import FakeApp, fake_app


@pytest.fixture
def app() -> FakeApp:
    return fake_app()


@pytest.fixture
def alice(app):
    return app.sign_up("alice")


@pytest.fixture
def bob(app):
    return app.sign_up("bob")


def notify(app: FakeApp, user_id: str, count: int, prefix: str = "n") -> list[str]:
    """Store `count` notifications, one a minute; their ids, oldest first."""
    ids = []
    with app.database() as uow:
        for i in range(count):
            app.clock.advance(timedelta(minutes=1))
            # The shape of the ids the server hands out: 32 hex digits.
            notification_id = hashlib.md5(f"{prefix}{i}".encode()).hexdigest()
            uow.notifications.add(
                Notification(
                    notification_id,
                    user_id,
                    NotificationKind.REPORT_READY,
                    f"title {i}",
                    "body",
                    app.clock(),
                    f"key-{notification_id}",
                )
            )
            ids.append(notification_id)
        uow.commit()
    return ids


def all_pages(app: FakeApp, principal, page_size: int, unread_only: bool = False) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page = app.notifications.page(principal, unread_only, page_size, token)
        pages.append([n.notification_id for n in page.notifications])
        if page.next_cursor is None:
            return pages
        token = str(page.next_cursor)


def test_paging_returns_every_notification_exactly_once_newest_first(app, alice):
    ids = notify(app, alice.user_id, 7)
    pages = all_pages(app, alice, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == list(reversed(ids))


def test_a_page_exactly_as_large_as_what_is_left_is_the_last_one(app, alice):
    notify(app, alice.user_id, 6)
    assert [len(p) for p in all_pages(app, alice, 3)] == [3, 3]


def test_paging_through_an_empty_inbox_gives_one_empty_page(app, alice):
    assert all_pages(app, alice, 10) == [[]]


def test_a_page_size_of_zero_means_fifty(app, alice):
    notify(app, alice.user_id, 51)
    page = app.notifications.page(alice, False, 0, "")
    assert len(page.notifications) == 50
    assert page.next_cursor is not None


def test_a_page_size_of_100_is_allowed(app, alice):
    notify(app, alice.user_id, 101)
    assert len(app.notifications.page(alice, False, 100, "").notifications) == 100


def test_a_page_size_over_100_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="page_size must be at most 100, got 101"):
        app.notifications.page(alice, False, 101, "")


@pytest.mark.parametrize("token", ["abc", "-3", "1.5"])
def test_a_page_token_the_server_never_gave_out_is_refused(app, alice, token):
    with pytest.raises(InvalidArgument, match="page_token"):
        app.notifications.page(alice, False, 10, token)


def test_a_page_token_of_unicode_digits_is_refused_as_invalid(app, alice):
    with pytest.raises(InvalidArgument, match="page_token"):
        app.notifications.page(alice, False, 10, "²")


def test_a_user_sees_only_their_own_notifications(app, alice, bob):
    notify(app, bob.user_id, 3, prefix="bob")
    mine = notify(app, alice.user_id, 2, prefix="alice")
    assert all_pages(app, alice, 10) == [list(reversed(mine))]


def test_the_unread_count_covers_all_unread_notifications_not_just_the_page(app, alice):
    ids = notify(app, alice.user_id, 5)
    app.notifications.mark_read(alice, [ids[0]])
    page = app.notifications.page(alice, False, 2, "")
    assert page.unread_count == 4


def test_unread_only_leaves_out_what_was_read(app, alice):
    ids = notify(app, alice.user_id, 4)
    app.notifications.mark_read(alice, [ids[1], ids[2]])
    assert all_pages(app, alice, 1, unread_only=True) == [[ids[3]], [ids[0]]]


def test_marking_read_returns_how_many_were_unread(app, alice):
    ids = notify(app, alice.user_id, 3)
    assert app.notifications.mark_read(alice, [ids[0], ids[1], ids[0]]) == 2
    assert app.notifications.mark_read(alice, [ids[0], ids[1], ids[2]]) == 1
    assert app.notifications.page(alice, False, 10, "").unread_count == 0


def test_marking_someone_elses_notification_is_not_found_and_marks_nothing(app, alice, bob):
    mine = notify(app, alice.user_id, 2, prefix="alice")
    (theirs,) = notify(app, bob.user_id, 1, prefix="bob")
    with pytest.raises(NotFound, match=theirs):
        app.notifications.mark_read(alice, [mine[0], theirs, mine[1]])
    assert app.notifications.page(alice, False, 10, "").unread_count == 2
    assert app.notifications.page(bob, False, 10, "").unread_count == 1


def test_marking_an_unknown_notification_is_not_found(app, alice):
    with pytest.raises(NotFound, match="nothing was marked"):
        app.notifications.mark_read(alice, ["no-such-id"])


def test_marking_nothing_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="name at least one"):
        app.notifications.mark_read(alice, [])


def test_marking_more_than_100_at_once_is_refused(app, alice):
    with pytest.raises(InvalidArgument, match="at most 100"):
        app.notifications.mark_read(alice, [f"n{i}" for i in range(101)])
