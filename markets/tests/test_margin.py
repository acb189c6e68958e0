"""Bounded shorting through the services: shorts within the limit, the margin rule on accepts, quotes and
orders, liquidation with auto-deleveraging after a price jump, and the settlement haircut, each checked
again by verify_ledger from the log."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import DomainError, http_status
from markets.models import Holding, Participant, Payout, Session, Settlement
from oracle.models import Tick

pytestmark = pytest.mark.django_db

PRICES = {"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20}
U = 10**6  # a unit, in base units


def tick(session_id: str, prices: dict[str, float], at: dt.datetime | None = None) -> None:
    at = at or clock.now()
    for leg, price in prices.items():
        Tick.objects.create(session_id=session_id, symbol=leg, at=at, price=round(price * U), source="test")


def shorting(users, **kwargs) -> Session:
    params = {"short_limit": "0.2", "margin_band": "0.15", "initial_margin": "0.05"} | kwargs
    session = create_demo(users, **params)
    tick(session.id, PRICES)
    return session


def trade(users, taker: str, maker: str, give: str, get: str, qty: str, rate: str):
    rfq = services.request_rfq(users[taker], "demo", give, get, qty)
    quote = services.provide_quote(users[maker], rfq.id, rate)
    return services.accept_quote(users[taker], quote.id)


def holdings(user) -> list[int]:
    return projections.holdings_by_user("demo")[user.pk]


def clean(session_id: str = "demo") -> None:
    report = audit.verify_session(session_id)
    assert report.problems == []


def test_off_by_default_nobody_goes_below_zero(users):
    create_demo(users)
    with pytest.raises(DomainError) as refused:
        services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "26")
    assert refused.value.code == "insufficient_inventory"


def test_a_short_within_the_limit_trades_and_the_log_proves_it(users):
    shorting(users)
    # alice holds 25 AAPL; the limit is 0.2 x 100 = 20 short: she may give 45. mm holds 30 ORCL and may
    # go 24 short: 54 ORCL is as much as it may give.
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")
    assert holdings(users["alice"]) == [-20 * U, 15 * U, 20 * U, 84 * U]
    assert holdings(users["mm"])[3] == -24 * U
    assert Session.objects.get(id="demo").short_limit == "0.2"
    clean()


def test_a_short_past_the_limit_is_refused_with_its_own_code(users):
    shorting(users)
    with pytest.raises(DomainError) as refused:
        services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "46")
    assert refused.value.code == "short_limit"
    assert "20" in refused.value.message


def test_an_accept_that_breaks_the_margin_is_refused_and_writes_nothing(users):
    shorting(users, margin_band="0.5", initial_margin="0.5")
    # Giving 45 AAPL (100 each) for NVDA at a poor rate, in a wide box: W goes below the requirement.
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "45")
    quote = services.provide_quote(users["mm"], rfq.id, "0.1")
    before = Event.objects.count()
    with pytest.raises(DomainError) as refused:
        services.accept_quote(users["alice"], quote.id)
    err = refused.value
    assert err.code == "margin" and http_status(err) == 409
    assert err.detail["binding_leg"] == "AAPL"
    assert float(err.detail["W"]) < float(err.detail["requirement"])
    assert Event.objects.count() == before
    assert holdings(users["alice"])[0] == 25 * U


def test_a_price_jump_liquidates_and_deleverages_exactly(users):
    shorting(users)
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")  # alice: -20 AAPL, 84 ORCL
    assert services.liquidate_due_sessions() == []
    tick("demo", {"AAPL": 250})  # +150% in one tick: her longs no longer cover the short in the box
    outcomes = services.liquidate_due_sessions()
    assert outcomes and "liquidated" in outcomes[0][1]
    alice = holdings(users["alice"])
    assert alice[0] == 0, "her short is closed"
    types = list(Event.objects.filter(stream="session-demo").values_list("type", flat=True))
    assert types[-2:] == ["PositionLiquidated", "AutoDeleveraged"]
    adl = Event.objects.filter(type="AutoDeleveraged").last().data
    assert adl["ranking"]["AAPL"][0] == users["mm"].pk or adl["moves"]
    assert Participant.objects.get(session_id="demo", user=users["alice"]).liquidated_at is not None
    clean()


def test_a_fixing_outside_the_box_is_haircut_and_every_payout_stays_at_or_above_zero(users):
    shorting(users, margin_band="0.15")
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")
    services.settle_session(users["org"], "demo", prices={"AAPL": "400", "NVDA": "50", "META": "80", "ORCL": "20"})
    settled = Settlement.objects.get(session_id="demo")
    assert settled.deficit not in ("", "0")
    paid = {p.participant.user_id: p for p in Payout.objects.filter(session_id="demo").select_related("participant")}
    assert all(float(p.amount) >= 0 for p in paid.values())
    assert paid[users["alice"].pk].amount.startswith("0")
    assert float(paid[users["alice"].pk].gross) < 0
    assert settled.total == settled.expected
    clean()


def test_a_holder_deleveraged_of_units_its_orders_offered_has_those_orders_cancelled(users):
    """mm offers all its AAPL in a resting order; deleveraging takes some of it: the order no longer fits
    what mm holds, so it is cancelled in the same command (else it could later fill mm short unasked)."""
    shorting(users, mechanism="both", batch_seconds=3600)
    trade(users, "alice", "mm", "AAPL", "ORCL", "45", "1.2")  # mm: 70 AAPL
    order = services.place_order(users["mm"], "demo", "AAPL", "NVDA", "70", "100", gtc=True)
    services.pause_trading(users["org"], "demo")  # paused: no batch to buy back in, deleveraged at once
    tick("demo", {"AAPL": 250})
    assert services.liquidate_due_sessions()
    types = list(Event.objects.filter(stream="session-demo").values_list("type", flat=True))
    assert types[-3:] == ["PositionLiquidated", "AutoDeleveraged", "OrderCancelled"]
    order.refresh_from_db()
    assert order.status == "cancelled"
    mm = Holding.objects.get(session_id="demo", participant__user=users["mm"], leg="AAPL")
    assert (mm.qty, mm.reserved) == (50 * U, 0)
    clean()
