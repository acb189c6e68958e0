"""Bounded shorting under real concurrency (threads, one connection each, a real SQLite file or
PostgreSQL): two accepts that each fit the margin rule alone but not together, by the same participant,
and two participants each going short of the same leg within their own limit but past the pool's gross
cap together. Exactly one of each pair trades, the other is refused with its code and figures, and the
ledger verifies."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import DomainError, http_status
from markets.tests.test_concurrency import run_together
from oracle.models import Tick

pytestmark = pytest.mark.django_db(transaction=True)

U = 10**6
PRICES = {"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20}
# alice and bob hold 80 ORCL each (1,600), the makers the rest; a cap of 50 AAPL short each and in all.
ALLOCATION = {
    "alice": ["0", "0", "0", "80"],
    "bob": ["0", "0", "0", "80"],
    "mm": ["60", "30", "40", "180"],
    "mm2": ["40", "30", "40", "160"],
}


def session(users, sid: str) -> None:
    create_demo(
        users, sid, open_it=False, q=[100, 60, 80, 500], allocation_mode="custom", short_limit="0.5",
        margin_band="0.15", initial_margin="0.05",
    )  # fmt: skip
    services.open_session(users["org"], sid, allocation=ALLOCATION)
    for leg, price in PRICES.items():
        Tick.objects.create(session_id=sid, symbol=leg, at=clock.now(), price=price * U, source="test")


def quoted(users, sid: str, taker: str, maker: str, units: str):
    """An RFQ giving AAPL (short) for ORCL, quoted at the oracle's rate (5 ORCL per AAPL)."""
    rfq = services.request_rfq(users[taker], sid, "AAPL", "ORCL", units)
    return services.provide_quote(users[maker], rfq.id, "5")


def race(users, sid: str, accepts: list[tuple[str, int]]) -> tuple[list, list[DomainError]]:
    before = Event.objects.filter(stream=f"session-{sid}").count()
    results = run_together(len(accepts), lambda i: services.accept_quote(users[accepts[i][0]], accepts[i][1]))
    traded = [value for kind, value in results if kind == "ok"]
    refused = [value for kind, value in results if kind == "error"]
    assert all(isinstance(e, DomainError) for e in refused), refused
    assert len(traded) == 1 and len(refused) == 1, results
    # The winner wrote its trade (the quote filled, the RFQ closed), the loser nothing.
    assert Event.objects.filter(stream=f"session-{sid}", type="TradeExecuted").count() == 1
    assert Event.objects.filter(stream=f"session-{sid}").count() == before + 1
    report = audit.verify_session(sid)
    assert report.ok, report.problems
    return traded, refused


@pytest.mark.parametrize("round_", range(3))
def test_two_accepts_by_one_participant_that_fit_the_margin_alone_but_not_together(users, round_):
    """Each gives 20 AAPL short: W = 0.85 x 3,600 - 1.15 x 2,000 = 760 >= IM 100 alone; both, 40 short:
    W = 0.85 x 5,600 - 1.15 x 4,000 = 160 < IM 200."""
    sid = f"mr{round_}"
    session(users, sid)
    quotes = [quoted(users, sid, "alice", maker, "20") for maker in ("mm", "mm2")]
    _, [refused] = race(users, sid, [("alice", q.id) for q in quotes])
    assert refused.code == "margin" and http_status(refused) == 409
    assert refused.detail["who"] == "you" and refused.detail["binding_leg"] == "AAPL"
    assert Decimal(refused.detail["W"]) == 160 and Decimal(refused.detail["requirement"]) == 200
    alice = projections.holdings_by_user(sid)[users["alice"].pk]
    assert alice == [-20 * U, 0, 0, 180 * U]


@pytest.mark.parametrize("round_", range(3))
def test_two_participants_going_short_of_one_leg_past_the_pools_cap(users, round_):
    """alice and bob each give 30 AAPL short (their own cap is 50, and W 460 >= IM 150 for each): 60 in
    all is past the pool's gross cap of 50 AAPL."""
    sid = f"gr{round_}"
    session(users, sid)
    accepts = [
        ("alice", quoted(users, sid, "alice", "mm", "30").id),
        ("bob", quoted(users, sid, "bob", "mm2", "30").id),
    ]
    _, [refused] = race(users, sid, accepts)
    assert refused.code == "short_limit" and http_status(refused) == 409
    assert "the pool would be short 60.000000 AAPL in all, the cap is 50.000000" in refused.message
    x = projections.holdings_by_user(sid)
    assert sorted(x[users[n].pk][0] for n in ("alice", "bob")) == [-30 * U, 0]
    assert sum(-row[0] for row in x.values() if row[0] < 0) == 30 * U
