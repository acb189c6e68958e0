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
