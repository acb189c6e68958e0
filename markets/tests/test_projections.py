"""The projection: each event type, applied by the one code path (`projections.apply`), leaves the read
models a reader expects; replaying a stream rebuilds exactly what was stored; an event that cannot be
applied is named, never a traceback."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from conftest import create_demo
from ledger import clock, store
from markets import projections, services
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Settlement, Trade

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 5, 6, 10, 0, tzinfo=dt.UTC)
T2 = T0 + dt.timedelta(hours=1)


def test_a_whole_session_projects_event_by_event(users):
    clock.set_time(T0)
    create_demo(users, "life", end_mode="timed", t2=T2)
    session = Session.objects.get(id="life")
    assert (session.status, session.version) == ("open", 8)  # created, 5 joined, allocated, opened
    assert Participant.objects.filter(session=session).count() == 5
    assert Holding.objects.filter(session=session).count() == 4 * 4  # the organiser holds nothing
    assert set(Holding.objects.filter(session=session).values_list("qty", flat=True)) == {
        25_000_000, 15_000_000, 20_000_000, 30_000_000
    }  # fmt: skip

    rfq = services.request_rfq(users["alice"], "life", "AAPL", "NVDA", "10")
    cheap = services.provide_quote(users["mm"], rfq.id, "0.6", 30)
    dear = services.provide_quote(users["mm2"], rfq.id, "0.62", 600)
    clock.set_time(T0 + dt.timedelta(seconds=31))
    services.expire_due_quotes()
    assert Quote.objects.get(id=cheap.id).status == "expired"
    services.accept_quote(users["alice"], dear.id)
    assert (RFQ.objects.get(id=rfq.id).status, Quote.objects.get(id=dear.id).status) == ("filled", "filled")
    trade = Trade.objects.get()
    assert (trade.give_qty, trade.get_qty, trade.taker.username, trade.maker.username) == (
        10_000_000, 6_200_000, "alice", "mm2"
    )  # fmt: skip

    other = services.request_rfq(users["bob"], "life", "META", "ORCL", "2")
    services.provide_quote(users["mm"], other.id, "1", 3600)
    left_open = services.request_rfq(users["bob"], "life", "ORCL", "META", "1")
    services.cancel_rfq(users["bob"], other.id)
    assert RFQ.objects.get(id=other.id).status == "cancelled"
    assert set(Quote.objects.filter(rfq_id=other.id).values_list("status", flat=True)) == {"lapsed"}

    from oracle.models import Tick

    Tick.objects.bulk_create(
        Tick(session_id="life", symbol=leg, at=T0 + dt.timedelta(minutes=5), price=1_000_000, source="test")
        for leg in session.legs
    )
    clock.set_time(T2)
    services.settle_session(None, "life")
    session.refresh_from_db()
    assert (session.status, session.closed_at) == ("settled", T2)
    assert RFQ.objects.get(id=left_open.id).status == "lapsed"
    settlement = Settlement.objects.get(session=session)
    assert settlement.total == settlement.expected == "360.000000000000"  # q . S with every price 1
    assert Payout.objects.filter(session=session).count() == 4

    stored = projections.snapshot("life")
    assert projections.diff(stored, projections.rebuild("life")) == []
    assert projections.snapshot("life") == stored  # the rebuild rolled itself back


def test_an_event_nobody_projects_is_named_when_replayed(users):
    create_demo(users)
    with transaction.atomic():
        event = store.append("session-demo", "SomethingNew", {"x": 1}, expected_version=8)
    with pytest.raises(projections.ReplayError) as info:
        projections.rebuild("demo")
    assert str(info.value).startswith(f"event #{event.seq} (SomethingNew v9) cannot be replayed")
    assert Session.objects.filter(id="demo").exists()  # the stored projection is untouched


def test_diff_says_where_two_snapshots_part():
    a = {"holdings": [(1, "AAPL", 0, 5, 5)], "session": {"status": "open"}}
    b = {"holdings": [(1, "AAPL", 0, 6, 5)], "session": {"status": "open"}}
    assert projections.diff(a, a) == []
    assert projections.diff(a, b) == ["holdings[0]: stored (1, 'AAPL', 0, 5, 5) but replay gives (1, 'AAPL', 0, 6, 5)"]
    assert projections.diff(a, {**b, "holdings": []}) == ["holdings: stored has 1 rows, replay gives 0"]
