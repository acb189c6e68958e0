"""Orders placed and cancelled while a cut runs, by real threads on the real database (each with its
connection): every order is in exactly one batch's book or in none, a cancel either wins before the cut or
is refused, reservations never go wrong, and the ledger verifies."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, services
from markets.errors import DomainError
from markets.models import Holding, Order
from markets.tests.test_batch_service import T0, tick
from markets.tests.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_orders_and_cancels_racing_a_cut_land_in_exactly_one_batch_or_none(users):
    clock.set_time(T0)
    create_demo(users, "race", mechanism="batch", batch_seconds=10, max_orders=50)
    tick("race", T0)
    early = [services.place_order(users["mm"], "race", "NVDA", "AAPL", "0.5", "2.3", gtc=True) for _ in range(4)]
    clock.set_time(T0 + dt.timedelta(seconds=9, microseconds=999_000))  # the cut comes in a millisecond
    plan = ["place"] * 6 + ["cancel"] * 4 + ["cut"] * 2  # two schedulers: the batch is cut once

    def act(i: int):
        if plan[i] == "place":
            return services.place_order(users["alice"], "race", "AAPL", "NVDA", "1", "0.39", good_for=2).id
        if plan[i] == "cancel":
            return services.cancel_order(users["mm"], early[i - 6].id).id
        return services.clear_batch(None, "race")

    clock.set_time(T0 + dt.timedelta(seconds=10))  # every racer acts at the cut instant
    results = list(zip(plan, run_together(len(plan), act), strict=True))
    errors = [value for _, (kind, value) in results if kind == "error"]
    assert all(isinstance(e, DomainError) and e.code == "batch_cut" for e in errors), errors
    cuts = [value for what, (kind, value) in results if what == "cut" and kind == "ok" and value is not None]
    assert len(cuts) == 1  # one batch, whichever scheduler got the session's lock first
    events = list(Event.objects.filter(stream="session-race").order_by("seq"))
    (cleared,) = [e for e in events if e.type == "BatchCleared"]
    book = Counter(cleared.data["orders"])
    # Every order rested before the cut is in its book once; a cancel of it was refused until the cut was
    # recorded, and one that won came after it (the order then rested on, good till cancelled).
    assert book == Counter(o.id for o in early)
    for e in events:
        if e.type == "OrderCancelled":
            assert e.seq > cleared.seq
    # Orders placed at the cut instant are not in its book (only orders placed before a cut are).
    placed = {value for what, (kind, value) in results if what == "place" and kind == "ok"}
    assert len(placed) == 6 and not placed & set(book)
    assert set(Order.objects.filter(id__in=placed).values_list("status", flat=True)) == {"resting"}
    for h in Holding.objects.filter(session_id="race"):
        assert 0 <= h.reserved <= h.qty
    report = audit.verify_session("race")
    assert report.ok, report.problems
