"""The trade path reads and builds rows without the ORM's query building: what it hands back must be
what the ORM would have read."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger import clock
from markets import services, sql
from markets.models import Session, Trade

pytestmark = pytest.mark.django_db


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_a_session_row_reads_as_the_orm_reads_it(users, demo):
    t1 = clock.now() + dt.timedelta(hours=1)
    services.create_session(
        users["org"],
        session_id="timed",
        legs=["AAPL", "NVDA"],
        q=["1.5", "2"],
        title="Timed één",
        t1=t1,
        t2=t1 + dt.timedelta(hours=2),
        start_mode="scheduled",
        end_mode="timed",
        fixing_rule={"rule": "twap", "window": 60},
    )
    for sid in ("demo", "timed"):
        got = sql.get_by_pk(Session, sid)
        assert fields(got) == fields(Session.objects.get(id=sid))
        assert got.t1 is None or got.t1.tzinfo is not None
        assert not got._state.adding
    assert sql.get_by_pk(Session, "nope") is None


def test_the_trade_an_accept_returns_is_the_stored_row(users, demo):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    trade = services.accept_quote(users["alice"], quote.id)
    assert fields(trade) == fields(Trade.objects.get(id=trade.id))
    assert trade.taker.username == "alice" and trade.maker.username == "mm"
    # Both parties come with it, as stored, so the API answers without reading them again.
    stored = Trade.objects.select_related("taker", "maker").get(id=trade.id)
    for got, want in ((trade.taker, stored.taker), (trade.maker, stored.maker)):
        assert (got.id, got.user_id, got.username, got.role, got.session_id) == (
            want.id, want.user_id, want.username, want.role, want.session_id
        )  # fmt: skip


def test_the_floor_s_reads_are_what_the_orm_reads(users, demo):
    """The push and the floor read rows, their parties, the holdings and the names by hand: the same rows
    and values as the ORM's queries, in the same order."""
    from markets.models import RFQ, Holding, Participant, Quote

    for give, get, maker, rate in (("AAPL", "NVDA", "mm", "0.62"), ("NVDA", "AAPL", "mm2", "1.5")):
        rfq = services.request_rfq(users["alice"], "demo", give, get, "3")
        services.accept_quote(users["alice"], services.provide_quote(users[maker], rfq.id, rate).id)
    open_rfq = services.request_rfq(users["bob"], "demo", "AAPL", "NVDA", "1")
    for maker, rate in (("mm2", "0.7"), ("mm", "0.6")):
        services.provide_quote(users[maker], open_rfq.id, rate)

    trades = sql.with_parties(sql.rows_of(Trade, '"session_id" = %s', ["demo"], '"id" DESC', limit=1), "taker", "maker")
    want = list(Trade.objects.filter(session_id="demo").select_related("taker", "maker").order_by("-id")[:1])
    assert [fields(t) for t in trades] == [fields(t) for t in want]
    assert [(fields(t.taker), fields(t.maker)) for t in trades] == [(fields(t.taker), fields(t.maker)) for t in want]
    quotes = sql.with_parties(sql.rows_of(Quote, '"rfq_id" = %s', [open_rfq.id], '"rate", "id"'), "maker")
    assert [(fields(q), q.maker.username) for q in quotes] == [
        (fields(q), q.maker.username) for q in Quote.objects.filter(rfq=open_rfq).order_by("rate", "id")
    ]
    assert [q.maker.username for q in quotes] == ["mm", "mm2"]  # best rate first
    assert [fields(r) for r in sql.rows_of(RFQ, '"session_id" = %s', ["demo"], '"id"')] == [
        fields(r) for r in RFQ.objects.filter(session_id="demo").order_by("id")
    ]
    assert sql.with_parties([], "taker") == []
    assert sql.holdings_of("demo") == list(
        Holding.objects.filter(session_id="demo")
        .order_by("participant__username", "leg_index")
        .values_list(
            "participant__username", "participant__role", "participant__user_id", "leg_index", "qty", "initial"
        )
    )
    assert sql.trade_count("demo") == 2 and sql.trade_count("nope") == 0
    assert sql.participant_names("demo") == dict(
        Participant.objects.filter(session_id="demo").values_list("user_id", "username")
    )
    parties = sql.Parties("demo")  # one read for a push: the names and every row's parties
    assert parties.names() == sql.participant_names("demo")
    again = parties.attach(sql.rows_of(Trade, '"session_id" = %s', ["demo"], '"id" DESC', limit=1), "taker", "maker")
    assert [(fields(t.taker), fields(t.maker)) for t in again] == [(fields(t.taker), fields(t.maker)) for t in want]
    assert [
        fields(r.taker) for r in parties.attach(list(RFQ.objects.filter(session_id="demo").order_by("id")), "taker")
    ] == [fields(r.taker) for r in RFQ.objects.filter(session_id="demo").select_related("taker").order_by("id")]
