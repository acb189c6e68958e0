"""The worked example of docs/shorting.md, run through the services: every figure the page quotes is
asserted here, so the page cannot drift from what the market does."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from conftest import make_user
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import DomainError
from markets.models import Payout, Session, Settlement
from markets.selectors.margin import margin_rows
from oracle.models import Tick

pytestmark = pytest.mark.django_db
U = 10**6


def tick(prices: dict[str, int], at: dt.datetime | None = None) -> None:
    for leg, price in prices.items():
        Tick.objects.create(session_id="ex", symbol=leg, at=at or clock.now(), price=price * U, source="example")


def row(name: str) -> dict:
    rows, _ = margin_rows(Session.objects.get(id="ex"))
    return next(r.as_dict() for r in rows if r.name == name)


@pytest.fixture
def example(db):
    people = {name: make_user(name) for name in ("alice", "bob", "mm")}
    org = make_user("org", organiser=True)
    services.create_session(
        org,
        session_id="ex",
        legs=["AAPL", "NVDA"],
        q=["100", "200"],
        allocation_mode="custom",
        short_limit="0.2",
        margin_band="0.15",
        initial_margin="0.05",
    )
    for name, role in (("alice", "trader"), ("bob", "trader"), ("mm", "maker")):
        services.join_session(people[name], "ex", role)
    services.open_session(org, "ex", allocation={"alice": ["20", "10"], "bob": ["40", "95"], "mm": ["40", "95"]})
    tick({"AAPL": 100, "NVDA": 50})
    return people | {"org": org}


def sell_aapl(people, qty: str):
    rfq = services.request_rfq(people["alice"], "ex", "AAPL", "NVDA", qty)
    quote = services.provide_quote(people["mm"], rfq.id, "2")
    return services.accept_quote(people["alice"], quote.id)


def test_the_worked_example(example):
    people = example
    # 1. alice sells 30 AAPL, holding 20: she is short 10 (the limit is 0.2 x 100 = 20).
    sell_aapl(people, "30")
    assert projections.holdings_by_user("ex")[people["alice"].pk] == [-10 * U, 70 * U]
    alice = row("alice")
    assert (alice["W"], alice["requirement"], alice["status"]) == ("1825.000000000000", "50.000000000000", "ok")
    # 2. Another 11 would take her short to 21: refused, nothing written.
    with pytest.raises(DomainError) as refused:
        services.request_rfq(people["alice"], "ex", "AAPL", "NVDA", "11")
    assert refused.value.code == "short_limit"
    # 3. AAPL ticks to 250: W = 0.85 x 3500 - 1.15 x 2500 = 100 < IM 125: reduce-only.
    tick({"AAPL": 250})
    alice = row("alice")
    assert (alice["W"], alice["requirement"], alice["status"]) == (
        "100.000000000000",
        "125.000000000000",
        "reduce_only",
    )
    assert services.liquidate_due_sessions() == []
    # Reduce-only: selling 1 more AAPL lowers W, refused with the figures.
    rfq = services.request_rfq(people["alice"], "ex", "AAPL", "NVDA", "1")
    quote = services.provide_quote(people["mm"], rfq.id, "5")
    with pytest.raises(DomainError) as refused:
        services.accept_quote(people["alice"], quote.id)
    assert refused.value.code == "margin" and "reduce-only" in refused.value.message
    services.cancel_rfq(people["alice"], rfq.id)
    # 4. AAPL ticks to 270: W = 2975 - 3105 = -130 < 0: liquidated; mm (70 AAPL) ranks first and gives 10
    # AAPL for 10 x 270 / 50 = 54 NVDA.
    tick({"AAPL": 270})
    assert services.liquidate_due_sessions() == [("ex", f"liquidated user(s) {people['alice'].pk}")]
    liquidated = Event.objects.filter(stream="session-ex", type="PositionLiquidated").get().data
    assert (liquidated["W"], liquidated["method"]) == ("-130.000000000000", "deleverage")
    adl = Event.objects.filter(stream="session-ex", type="AutoDeleveraged").get().data
    assert adl["ranking"] == {"AAPL": [people["mm"].pk, people["bob"].pk]}
    assert adl["moves"] == [{"from": people["mm"].pk, "leg": "AAPL", "units": 10 * U}]
    assert adl["paid"] == {str(people["mm"].pk): {"NVDA": 54 * U}}
    matrix = projections.holdings_by_user("ex")
    assert matrix[people["alice"].pk] == [0, 16 * U]
    assert matrix[people["mm"].pk] == [60 * U, 89 * U]
    assert row("alice")["status"] == "liquidated"
    assert audit.verify_session("ex").problems == []


def test_the_haircut_of_the_worked_example(example):
    """A fixing far outside the box before any liquidation ran: alice's payout would be -1,500; it is paid
    0, and the 1,500 is taken from bob and mm in proportion (factor 60,000 / 61,500 = 40/41)."""
    people = example
    sell_aapl(people, "30")
    services.settle_session(people["org"], "ex", prices={"AAPL": "500", "NVDA": "50"})
    settled = Settlement.objects.get(session_id="ex")
    assert settled.deficit == "1500.000000000000"
    paid = {
        p.participant.user.username: p
        for p in Payout.objects.filter(session_id="ex").select_related("participant__user")
    }
    assert paid["alice"].gross == "-1500.000000000000" and Decimal(paid["alice"].amount) == 0
    assert paid["bob"].gross == "24750.000000000000"
    assert paid["bob"].amount == "24146.341463414634"  # 24,750 x 40/41, to the base unit
    assert paid["mm"].gross == "36750.000000000000"
    assert paid["mm"].amount == "35853.658536585366"
    assert sum(Decimal(p.amount) for p in paid.values()) == Decimal("60000")
    haircut = Event.objects.filter(stream="session-ex", type="SessionSettled").get().data["haircut"]
    assert haircut["factor"] == "40/41"
    assert audit.verify_session("ex").problems == []


def test_the_results_page_shows_the_haircut_line_by_line(example, client):
    people = example
    sell_aapl(people, "30")
    services.settle_session(people["org"], "ex", prices={"AAPL": "500", "NVDA": "50"})
    client.force_login(people["org"])
    page = client.get("/sessions/ex/results").content.decode()
    assert 'data-testid="results-haircut"' in page and "40/41" in page and "deficit of <span" in page
    assert (
        ">1,500.00</span>" in page and "-1,500.00" in page and "+1,500.00" in page
    )  # alice's x.S, and what raised it to 0
    assert "-603.66" in page and "-896.34" in page  # bob's and mm's share of the deficit
