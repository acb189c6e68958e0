"""A cut on the read models (`markets.batch_sql.apply_cut`), order by order: filled in full, partly filled and
expiring, partly filled and resting on, untouched and expiring, untouched and one batch older, untouched
good till cancelled. Each stored order is what `domain.orders.after_cut` says of it from the recorded fills,
its closing time is the cut's (stored as every other time, so a query by time finds it), and reservations
are exactly what the resting orders still promise."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import projections, services
from markets.domain import orders as rules
from markets.models import Holding, Order
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
PRICES = {"AAPL": 190_000_000, "NVDA": 475_000_000, "META": 350_000_000, "ORCL": 100_000_000}


def test_every_kind_of_order_in_one_cut_is_stored_as_the_rules_say(users):
    clock.set_time(T0)
    create_demo(users, "cut", mechanism="batch", batch_seconds=10)
    Tick.objects.bulk_create(Tick(session_id="cut", symbol=s, at=T0, price=p, source="test") for s, p in PRICES.items())
    place = services.place_order
    u = users
    # AAPL sellers (20) far outnumber the NVDA that buys it (2): the sellers fill pro rata, in part.
    partly_once = place(u["alice"], "cut", "AAPL", "NVDA", "10", "0.3")
    partly_always = place(u["bob"], "cut", "AAPL", "NVDA", "10", "0.3", gtc=True)
    whole = place(u["mm"], "cut", "NVDA", "AAPL", "2", "2")
    older = place(u["mm2"], "cut", "NVDA", "AAPL", "1", "10", good_for=3)  # never crosses
    expires = place(u["alice"], "cut", "META", "ORCL", "1", "100")  # no counterparty
    unchanged = place(u["mm2"], "cut", "META", "ORCL", "1", "100", gtc=True)
    before = {o.id: o for o in Order.objects.filter(session_id="cut")}

    clock.set_time(T0 + dt.timedelta(seconds=10))
    cut = services.clear_batch(None, "cut")
    assert cut.outcome == "cleared"
    event = Event.objects.filter(stream="session-cut", type="BatchCleared").get()
    fills = {f["order"]: f for f in event.data["result"]["fills"]}
    assert set(fills) == {partly_once.id, partly_always.id, whole.id}
    assert 0 < fills[partly_once.id]["rest"] and 0 < fills[partly_always.id]["rest"] and fills[whole.id]["rest"] == 0

    stored = {o.id: o for o in Order.objects.filter(session_id="cut")}
    for oid, was in before.items():
        rest = fills[oid]["rest"] if oid in fills else was.rest
        status, left = rules.after_cut(rest, was.batches_left)
        now = stored[oid]
        assert (now.rest, now.status, now.batches_left) == (rest, status, left), oid
        assert now.closed_at == (None if status == "resting" else event.at), oid
    kinds = {oid: stored[oid].status for oid in before}
    assert kinds == {
        partly_once.id: "expired",
        partly_always.id: "resting",
        whole.id: "filled",
        older.id: "resting",
        expires.id: "expired",
        unchanged.id: "resting",
    }
    assert stored[older.id].batches_left == 2 and stored[unchanged.id].batches_left is None
    # Closing times are stored like every other: the orders closed at the cut are found by it.
    assert Order.objects.filter(session_id="cut", closed_at=event.at).count() == 3
    assert Order.objects.filter(session_id="cut", closed_at__gte=event.at).count() == 3
    for holding in Holding.objects.filter(session_id="cut"):
        promised = sum(
            o.rest
            for o in stored.values()
            if o.status == "resting" and o.participant_id == holding.participant_id and o.give_leg == holding.leg
        )
        assert holding.reserved == promised, (holding.participant_id, holding.leg)
    assert projections.diff(projections.snapshot("cut"), projections.rebuild("cut")) == []


def test_a_cut_of_a_thousand_orders_writes_them_all(users):
    """Past the size of one statement's group of ids (500): every order of the book is aged."""
    clock.set_time(T0)
    create_demo(users, "big", mechanism="batch", batch_seconds=10, max_orders=1000, min_order="0.000001")
    Tick.objects.bulk_create(Tick(session_id="big", symbol=s, at=T0, price=p, source="test") for s, p in PRICES.items())
    for i in range(600):
        services.place_order(users["bob"], "big", "ORCL", "META", "0.00001", "9", good_for=1 + i % 2)
    clock.set_time(T0 + dt.timedelta(seconds=10))
    assert services.clear_batch(None, "big").orders == 600
    statuses = list(Order.objects.filter(session_id="big").order_by("id").values_list("status", "batches_left"))
    assert statuses == [("expired", 0), ("resting", 1)] * 300
    assert Holding.objects.get(session_id="big", participant__username="bob", leg="ORCL").reserved == 300 * 10
