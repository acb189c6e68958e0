"""Fixtures shared by every app's tests: users with roles and the seed's demo session."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from ledger import clock


@pytest.fixture(autouse=True)
def _unfrozen_clock():
    """Every test starts on the real clock, whatever the previous one froze."""
    clock.set_time(None)
    yield
    clock.set_time(None)


def make_user(username: str, *, organiser: bool = False, password: str = "pw"):
    user = get_user_model().objects.create_user(username=username, password=password)
    if organiser:
        user.user_permissions.add(Permission.objects.get(codename="add_session", content_type__app_label="markets"))
        user = get_user_model().objects.get(pk=user.pk)  # drop the permission cache
    return user


@pytest.fixture
def users(db):
    """organiser `org`, traders `alice` and `bob`, makers `mm` and `mm2`, outsider `eve`."""
    return {
        "org": make_user("org", organiser=True),
        "alice": make_user("alice"),
        "bob": make_user("bob"),
        "mm": make_user("mm"),
        "mm2": make_user("mm2"),
        "eve": make_user("eve"),
    }


def create_demo(users, session_id: str = "demo", open_it: bool = True, **kwargs):
    """The seed's scenario: AAPL NVDA META ORCL, q = [100, 60, 80, 120], alice+bob trade, mm makes."""
    from markets import services

    params = {"legs": ["AAPL", "NVDA", "META", "ORCL"], "q": [100, 60, 80, 120]} | kwargs
    services.create_session(users["org"], session_id=session_id, **params)
    services.join_session(users["alice"], session_id, "trader")
    services.join_session(users["bob"], session_id, "trader")
    services.join_session(users["mm"], session_id, "maker")
    services.join_session(users["mm2"], session_id, "maker")
    if open_it:
        services.open_session(users["org"], session_id)
    from markets.models import Session

    return Session.objects.get(id=session_id)


@pytest.fixture
def demo(users):
    return create_demo(users)
