"""The reads shaped for pages and answers: the floor's invariant badges say what the domain's checks say
(a broken holding shows), where a session stands in words, the board, the sessions list's values, and the
log's summaries naming people as they joined."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import F

from conftest import create_demo
from ledger import clock
from markets import selectors, services
from markets.models import Holding, Session
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 7, 1, 9, 0, tzinfo=dt.UTC)
PRICES = {"AAPL": 2_000_000, "NVDA": 3_000_000, "META": 4_000_000, "ORCL": 5_000_000}


def checks(session_id: str) -> list[tuple[str, bool, bool, str]]:
    session = Session.objects.get(id=session_id)
    _, pool = selectors.holdings_and_pool(session, selectors.latest_prices(session))
    return [(c.name, c.ok, c.pending, c.detail) for c in pool.checks]


def tick(session_id: str, at: dt.datetime = T0) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=leg, at=at, price=p, source="test") for leg, p in PRICES.items()
    )


def test_the_invariant_badges_are_the_domains_checks(users):
    clock.set_time(T0)
    create_demo(users, "pre", open_it=False)
    assert all(pending for _, _, pending, _ in checks("pre"))
    create_demo(users)
    tick("demo")
    assert [(name, ok, pending) for name, ok, pending, _ in checks("demo")] == [
        ("1 Conservation", True, False),
        ("2 No negative holding", True, False),
        ("3 Zero-sum trades", True, False),
        ("4 Settlement sum", True, False),
    ]
    # Behind the services' back, one base unit appears from nowhere: the floor says so, in the checks' words.
    Holding.objects.filter(participant__username="bob", leg="ORCL").update(qty=F("qty") + 1)
    name, ok, _, detail = checks("demo")[0]
    assert (name, ok) == ("1 Conservation", False)
    assert detail == "Conservation broken on leg #3: holdings sum to 120.000001, q is 120.000000"


def test_where_a_session_stands_in_words(users):
    clock.set_time(T0)
    create_demo(users, "pre", open_it=False, start_mode="scheduled", t1=T0 + dt.timedelta(minutes=5))
    create_demo(users, "tm", end_mode="timed", t2=T0 + dt.timedelta(minutes=10))
    assert selectors.status_note(Session.objects.get(id="pre")) == "opens at t1 (2030-07-01 09:05:00 UTC)"
    tm = Session.objects.get(id="tm")
    assert selectors.status_note(tm).startswith("trading open until t2 (2030-07-01 09:10:00 UTC)")
    clock.set_time(T0 + dt.timedelta(minutes=10))
    assert selectors.phase_context(tm)["phase_label"] == "Trading closed"
    assert selectors.status_note(tm).startswith("trading closed, settles at the fixing (last")


def test_the_board_shows_open_rfqs_with_their_live_quotes(users, demo):
    clock.set_time(T0)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    soon = services.provide_quote(users["mm"], rfq.id, "0.6", 10)
    services.provide_quote(users["mm2"], rfq.id, "0.61", 600)
    gone = services.request_rfq(users["bob"], "demo", "META", "ORCL", "1")
    services.cancel_rfq(users["bob"], gone.id)
    clock.set_time(T0 + dt.timedelta(seconds=10))
    board = selectors.board_data(Session.objects.get(id="demo"))
    assert [r["id"] for r in board] == [rfq.id]
    assert [(q["maker"], q["expired"]) for q in board[0]["quotes"]] == [("mm", True), ("mm2", False)]
    assert board[0]["quotes"][0]["id"] == soon.id and board[0]["taker"] == "alice"


def test_a_settled_session_is_worth_what_it_paid_out(users):
    clock.set_time(T0)
    create_demo(users)
    services.settle_session(users["org"], "demo", prices={leg: "1" for leg in PRICES})
    tick("demo", T0 + dt.timedelta(minutes=1))  # ticks written after the settlement move nothing
    (row,) = [r for r in selectors.session_rows(users["alice"]) if r.session.id == "demo"]
    assert (row.phase, str(row.pool_value)) == ("settled", "360.000000000000")


def test_the_log_names_people_as_they_joined(users, demo):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    trade = services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.62").id)
    users["alice"].username = "alicia"
    users["alice"].save()
    lines = [e.summary for e in selectors.event_log(Session.objects.get(id="demo"))]
    assert lines[0] == f"trade {trade.id}: alice 10 AAPL → 6.2 NVDA with mm"
    assert lines[2] == f"RFQ {rfq.id}: alice gives 10 AAPL for NVDA"
    assert "mm2 as maker" in lines and "trading open" in lines
