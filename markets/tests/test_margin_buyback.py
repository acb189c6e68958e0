"""Bounded shorting in batch sessions. A liquidated participant cannot dodge deleveraging by cancelling its buy-back orders:
a position whose buy-back never reached a batch is judged again at the next liquidation run and, still
under W < 0, deleveraged at once."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.models import Order, Participant
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2031, 5, 6, 12, 0, tzinfo=dt.UTC)
U = 10**6


def tick(prices: dict[str, int]) -> None:
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=leg, at=clock.now(), price=p * U, source="test") for leg, p in prices.items()
    )


def test_cancelling_the_buy_back_orders_does_not_escape_liquidation(users):
    with clock.frozen(T0):
        create_demo(users, mechanism="batch", batch_seconds=20, short_limit="0.2", margin_band="0.15",
                    initial_margin="0.05")  # fmt: skip
        tick({"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20})
        # alice gives 54 ORCL (30 held, 24 short) for AAPL; mm takes the other side; the cut fills them.
        services.place_order(users["alice"], "demo", "ORCL", "AAPL", "54", "0.19")
        services.place_order(users["mm"], "demo", "AAPL", "ORCL", "11", "4.9")
        clock.advance(20)
        services.clear_batch(None, "demo")
        alice = users["alice"].pk
        assert projections.holdings_by_user("demo")[alice][3] < 0
        tick({"ORCL": 250})  # far beyond the band: W < 0
        services.liquidate_due_sessions()
        me = Participant.objects.get(session_id="demo", user=users["alice"])
        assert me.liquidation_pending
        buy_backs = list(Order.objects.filter(participant=me, status="resting").values_list("id", flat=True))
        assert buy_backs
        for order_id in buy_backs:  # she takes her buy-back orders off the book before the cut
            services.cancel_order(users["alice"], order_id)
        clock.advance(1)
        tick({"ORCL": 250})
        services.liquidate_due_sessions()
        assert projections.holdings_by_user("demo")[alice][3] == 0, "still short after the liquidation run"
        assert Event.objects.filter(stream="session-demo", type="AutoDeleveraged").exists()
        assert not Participant.objects.get(session_id="demo", user=users["alice"]).liquidation_pending
        assert audit.verify_session("demo").ok


def test_a_fill_the_margin_rule_refuses_at_the_cut_is_held_out_of_the_batch(users):
    """alice's short order fits the margin when placed; NVDA doubles before the cut, and at the cut's
    prices her fill would leave W under the requirement: her order is held out (BatchCleared margin_held),
    she trades nothing, and the log verifies."""
    with clock.frozen(T0):
        create_demo(users, mechanism="batch", batch_seconds=20, short_limit="0.5", margin_band="0.5",
                    initial_margin="0.5")  # fmt: skip
        tick({"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20})
        mine = services.place_order(users["alice"], "demo", "NVDA", "META", "40", "0.6")  # 15 held, 25 short
        for name, units in (("mm", "20"), ("mm2", "20"), ("bob", "10")):  # what they hold: none goes short
            services.place_order(users[name], "demo", "META", "NVDA", units, "0.5")
        before = projections.holdings_by_user("demo")[users["alice"].pk]
        clock.advance(10)
        tick({"NVDA": 100})
        clock.advance(10)
        services.clear_batch(None, "demo")
        cut = Event.objects.filter(stream="session-demo", type="BatchCleared").last().data
        assert cut["margin_held"] == [mine.id]
        assert all(f["owner"] != users["alice"].pk for f in cut["result"].get("fills", []))
        assert projections.holdings_by_user("demo")[users["alice"].pk] == before
        assert audit.verify_session("demo").ok
