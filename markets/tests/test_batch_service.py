"""Batch sessions through the services, on the database: orders reserve what they may give, cancel until
the cut, the cut clears at one price per leg and moves holdings exactly, orders expire after their batches,
the scheduler cuts what is due once, and replay and verify_ledger redo all of it (an edited fill is named).
"""

from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from conftest import create_demo, engine
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import DomainError
from markets.models import Batch, Fill, Holding, Order, Session
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
PRICES = {"AAPL": 190_000_000, "NVDA": 475_000_000, "META": 350_000_000, "ORCL": 100_000_000}


def tick(session_id: str, at: dt.datetime, prices: dict[str, int] = PRICES) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=s, at=at, price=p, source="test") for s, p in prices.items()
    )


def held(session_id: str, name: str, leg: str) -> tuple[int, int]:
    h = Holding.objects.get(session_id=session_id, participant__username=name, leg=leg)
    return h.qty, h.reserved


@pytest.fixture
def auction(users):
    """A batch session (10 s cuts) opened at T0, with the oracle's prices at T0."""
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", batch_seconds=10)
    tick("auc", T0)
    return SimpleNamespace(u=users, sid="auc")


def test_a_batch_session_records_its_settings_and_its_first_cut(auction):
    s = Session.objects.get(id="auc")
    assert (s.mechanism, s.batch_seconds, s.batch_band, s.max_orders, s.min_order) == ("batch", 10, "0.10", 20, 10_000)
    assert s.next_cut_at == T0 + dt.timedelta(seconds=10)
    created = Event.objects.get(stream="session-auc", type="SessionCreated").data
    assert created["mechanism"] == "batch" and created["batch"]["band"] == "0.10"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"mechanism": "auction"}, "invalid_mechanism"),
        ({"mechanism": "batch", "batch_seconds": 0}, "invalid_batch_settings"),
        ({"mechanism": "batch", "batch_seconds": 3601}, "invalid_batch_settings"),
        ({"mechanism": "batch", "batch_band": "0"}, "invalid_batch_band"),
        ({"mechanism": "batch", "batch_band": "0.6"}, "invalid_batch_band"),
        ({"mechanism": "batch", "batch_band": "0.00001"}, "invalid_batch_band"),
        ({"mechanism": "rfq", "batch_seconds": 10}, "invalid_mechanism"),
    ],
)
def test_bad_batch_settings_are_refused_and_write_nothing(users, kwargs, code):
    with pytest.raises(DomainError) as refused:
        services.create_session(users["org"], session_id="bad", legs=["A", "B"], q=[1, 1], **kwargs)
    assert refused.value.code == code
    assert not Event.objects.exists()


def test_an_order_reserves_what_it_may_give_and_a_cancel_frees_it(auction):
    u = auction.u
    order = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    assert (order.rest, order.status, order.batches_left) == (10_000_000, "resting", 1)
    assert held("auc", "alice", "AAPL") == (25_000_000, 10_000_000)
    with pytest.raises(DomainError) as refused:  # 25 held, 10 reserved: 15 available
        services.place_order(u["alice"], "auc", "AAPL", "META", "15.5", "1")
    assert refused.value.code == "insufficient_available" and refused.value.kind == "conflict"
    assert (
        "hold 25.000000 AAPL, 10.000000 reserved" in refused.value.message
        and "15.000000 available" in refused.value.message
    )
    with pytest.raises(DomainError) as other:
        services.cancel_order(u["bob"], order.id)
    assert other.value.code == "not_your_order"
    services.cancel_order(u["alice"], order.id)
    assert held("auc", "alice", "AAPL") == (25_000_000, 0)
    assert Order.objects.get(id=order.id).status == "cancelled"


@pytest.mark.parametrize(
    ("args", "kwargs", "code"),
    [
        (("AAPL", "NVDA", "0.001", "1"), {}, "order_too_small"),
        (("AAPL", "AAPL", "1", "1"), {}, "same_leg"),
        (("AAPL", "NVDA", "1", "0"), {}, "invalid_number"),
        (("AAPL", "NVDA", "1", "1"), {"good_for": 0}, "invalid_lifetime"),
        (("AAPL", "NVDA", "1", "1"), {"good_for": 2, "gtc": True}, "invalid_lifetime"),
    ],
)
def test_bad_orders_are_refused_with_their_codes_and_write_nothing(auction, args, kwargs, code):
    before = Event.objects.count()
    with pytest.raises(DomainError) as refused:
        services.place_order(auction.u["alice"], "auc", *args, **kwargs)
    assert refused.value.code == code
    assert Event.objects.count() == before


def test_at_most_max_orders_rest_per_participant(users):
    clock.set_time(T0)
    create_demo(users, "few", mechanism="batch", max_orders=2)
    for _ in range(2):
        services.place_order(users["bob"], "few", "ORCL", "META", "1", "0.2")
    with pytest.raises(DomainError) as refused:
        services.place_order(users["bob"], "few", "ORCL", "META", "1", "0.2")
    assert refused.value.code == "too_many_orders"


def test_each_mechanism_refuses_the_other_ones_commands(users):
    create_demo(users, "rfqs")
    with pytest.raises(DomainError) as no_orders:
        services.place_order(users["alice"], "rfqs", "AAPL", "NVDA", "1", "1")
    assert no_orders.value.code == "not_batch"
    create_demo(users, "batches", mechanism="batch")
    with pytest.raises(DomainError) as no_rfqs:
        services.request_rfq(users["alice"], "batches", "AAPL", "NVDA", "1")
    assert no_rfqs.value.code == "not_rfq"


def test_in_a_session_with_both_an_rfq_may_not_take_what_orders_reserve(users):
    create_demo(users, "both", mechanism="both")
    services.place_order(users["alice"], "both", "AAPL", "NVDA", "20", "0.39")
    with pytest.raises(DomainError) as refused:  # 25 held, 20 reserved
        services.request_rfq(users["alice"], "both", "AAPL", "NVDA", "6")
    assert (
        refused.value.code == "insufficient_inventory"
        and "not reserved by your resting orders" in refused.value.message
    )
    services.request_rfq(users["alice"], "both", "AAPL", "NVDA", "5")


def test_the_cut_clears_crossing_orders_at_one_price_and_moves_holdings_exactly(auction):
    u = auction.u
    ask = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")  # 1 AAPL for at least 0.39 NVDA
    bid = services.place_order(u["mm"], "auc", "NVDA", "AAPL", "4", "2.45")  # 1 NVDA for at least 2.45 AAPL
    assert services.clear_batch(None, "auc") is None  # not due before its cut
    clock.set_time(T0 + dt.timedelta(seconds=10))
    cut = services.clear_batch(None, "auc")
    assert cut.number == 1 and cut.outcome == "cleared" and cut.filled == 2
    fills = {f.order_id: f for f in Fill.objects.filter(batch=cut)}
    a, b = fills[ask.id], fills[bid.id]
    # One price per leg: both sides trade at p_AAPL / p_NVDA, within the band of the oracle's prices.
    p = cut.prices
    assert (
        abs(p["AAPL"] - PRICES["AAPL"]) <= PRICES["AAPL"] // 10
        and abs(p["NVDA"] - PRICES["NVDA"]) <= PRICES["NVDA"] // 10
    )
    assert a.given == b.received and b.given == a.received  # two legs: what one gives, the other receives
    assert a.received * 10**8 >= a.given * 39_000_000 and b.received * 10**8 >= b.given * 245_000_000  # limits
    assert held("auc", "alice", "AAPL") == (25_000_000 - a.given, 10_000_000 - a.given if a.rest else 0)
    assert held("auc", "alice", "NVDA") == (15_000_000 + a.received, 0)
    for leg, q in zip(["AAPL", "NVDA", "META", "ORCL"], Session.objects.get(id="auc").q, strict=True):
        assert sum(h.qty for h in Holding.objects.filter(session_id="auc", leg=leg)) == q
    # One batch each by default: what did not fill expired, and its reservation is free again.
    statuses = dict(Order.objects.filter(id__in=[ask.id, bid.id]).values_list("id", "status"))
    assert set(statuses.values()) <= {"filled", "expired"}
    assert all(h.reserved == 0 for h in Holding.objects.filter(session_id="auc"))
    assert Session.objects.get(id="auc").next_cut_at == T0 + dt.timedelta(seconds=20)


def test_orders_live_for_their_batches_and_good_till_cancelled_ones_rest_on(auction):
    u = auction.u
    once = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "1", "9")  # too greedy to cross
    twice = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "1", "9", good_for=2)
    always = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "1", "9", gtc=True)
    for k in (1, 2, 3):
        clock.set_time(T0 + dt.timedelta(seconds=10 * k))
        assert services.clear_batch(None, "auc").outcome == "none"
        status = dict(Order.objects.values_list("id", "status"))
        assert status[once.id] == "expired"
        assert status[twice.id] == ("resting" if k < 2 else "expired")
        assert status[always.id] == "resting"
    assert held("auc", "alice", "AAPL") == (25_000_000, 1_000_000)


def test_an_order_placed_after_the_cut_instant_waits_for_the_next_batch(auction):
    u = auction.u
    services.place_order(u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    clock.set_time(T0 + dt.timedelta(seconds=10, microseconds=1))  # the cut is due; nothing recorded yet
    late = services.place_order(u["mm"], "auc", "NVDA", "AAPL", "4", "2.45")
    cut = services.clear_batch(None, "auc")
    assert cut.orders == 1 and cut.outcome == "none"
    assert Order.objects.get(id=late.id).status == "resting"


def test_a_cancel_is_refused_once_its_cut_has_come_even_before_the_cut_is_recorded(auction):
    order = services.place_order(auction.u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    clock.set_time(T0 + dt.timedelta(seconds=10))
    with pytest.raises(DomainError) as refused:
        services.cancel_order(auction.u["alice"], order.id)
    assert refused.value.code == "batch_cut"


def test_the_organiser_clears_now_and_the_scheduler_cuts_a_due_batch_once(auction):
    u = auction.u
    with pytest.raises(DomainError) as refused:
        services.clear_batch(u["alice"], "auc")
    assert refused.value.code == "not_organiser"
    clock.set_time(T0 + dt.timedelta(seconds=3))
    now = services.clear_batch(u["org"], "auc")
    assert (now.number, now.cut_at) == (1, T0 + dt.timedelta(seconds=3))
    assert Session.objects.get(id="auc").next_cut_at == T0 + dt.timedelta(seconds=13)
    clock.set_time(T0 + dt.timedelta(seconds=47))  # nothing ran for a while: one cut, then the grid goes on
    call_command("settle", "--due", stdout=(out := __import__("io").StringIO()))
    assert "auc: batch 2:" in out.getvalue()
    assert Batch.objects.filter(session_id="auc").count() == 2
    assert Session.objects.get(id="auc").next_cut_at == T0 + dt.timedelta(seconds=53)
    assert services.clear_due_batches() == []  # the same instant again: nothing more is due


def test_trading_closing_lapses_resting_orders_and_frees_their_reservations(users):
    clock.set_time(T0)
    create_demo(users, "timed", mechanism="batch", end_mode="timed", t2=T0 + dt.timedelta(minutes=5))
    services.place_order(users["alice"], "timed", "AAPL", "NVDA", "3", "9", gtc=True)
    clock.set_time(T0 + dt.timedelta(minutes=6))
    services.close_due_sessions()
    assert Order.objects.get().status == "lapsed"
    assert held("timed", "alice", "AAPL") == (25_000_000, 0)


def _a_day_of_batches(auction) -> None:
    u = auction.u
    services.place_order(u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    services.place_order(u["bob"], "auc", "AAPL", "NVDA", "5", "0.395", good_for=3)
    services.place_order(u["mm"], "auc", "NVDA", "AAPL", "4", "2.45")
    kept = services.place_order(u["mm2"], "auc", "NVDA", "META", "2", "1.5", gtc=True)  # crosses nobody
    gone = services.place_order(u["mm2"], "auc", "ORCL", "META", "1", "0.2")
    services.cancel_order(u["mm2"], gone.id)
    for k in (1, 2):
        clock.set_time(T0 + dt.timedelta(seconds=10 * k))
        tick("auc", clock.now(), {**PRICES, "NVDA": PRICES["NVDA"] + 1_000_000 * k})
        services.clear_batch(None, "auc")
    services.place_order(u["alice"], "auc", "META", "NVDA", "3", "0.7")
    clock.set_time(T0 + dt.timedelta(seconds=25))
    services.clear_batch(u["org"], "auc")
    services.cancel_order(u["mm2"], kept.id)


def test_replay_rebuilds_orders_batches_fills_and_reservations_and_the_ledger_verifies(auction):
    _a_day_of_batches(auction)
    assert Batch.objects.filter(session_id="auc").count() == 3
    assert projections.diff(projections.snapshot("auc"), projections.rebuild("auc")) == []
    report = audit.verify_session("auc")
    assert report.ok, report.problems
    if engine() == "sqlite":  # the quick check reads the SQLite file itself
        quick = audit.verify_quick(["auc"])
        assert quick[0].ok, quick[0].problems


def test_verify_names_an_edited_fill_or_price_and_a_book_that_is_not_the_logs(auction):
    from markets.audit import _batch_problems

    _a_day_of_batches(auction)
    events = [
        SimpleNamespace(type=e.type, data=e.data, at=e.at, seq=e.seq)
        for e in Event.objects.filter(stream="session-auc").order_by("version")
    ]
    cleared = next(e for e in events if e.type == "BatchCleared" and e.data["result"]["result"] == "cleared")

    def edited(change) -> list[str]:
        forged = [copy.copy(e) for e in events]
        for e in forged:
            if e.seq == cleared.seq:
                e.data = copy.deepcopy(e.data)
                change(e.data)
        return _batch_problems(forged)

    assert _batch_problems(events) == []

    def more_received(d):
        d["result"]["fills"][0]["received"] += 1

    def other_price(d):
        d["result"]["prices"][0] += 1

    def fewer_orders(d):
        d["orders"] = d["orders"][1:]

    assert any("fill of order" in p or "receives" in p for p in edited(more_received))
    assert any("price of AAPL" in p for p in edited(other_price))
    assert any("its book names orders" in p for p in edited(fewer_orders))


def test_orders_are_sealed_in_the_log_until_their_batch_clears_but_not_for_their_owner_or_the_organiser(auction):
    from markets.selectors import event_log
    from markets.selectors.sealed import Seal

    u = auction.u
    session = Session.objects.get(id="auc")
    ask = services.place_order(u["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    gone = services.place_order(u["bob"], "auc", "ORCL", "META", "1", "0.2")
    services.cancel_order(u["bob"], gone.id)
    shown = {row.summary for row in event_log(session)}
    assert f"order {ask.id}: sealed until its batch clears" in shown
    assert not any("0.39" in line or "gives up to 10" in line for line in shown)
    placed = Event.objects.get(stream="session-auc", type="OrderPlaced", seq=ask.seq)
    assert Seal(session, u["bob"]).payload("OrderPlaced", placed.data) == {"order_id": ask.id, "sealed": True}
    assert Seal(session, u["alice"]).payload("OrderPlaced", placed.data) == placed.data  # her own
    assert Seal(session, u["org"]).payload("OrderPlaced", placed.data) == placed.data  # the organiser
    services.place_order(u["mm"], "auc", "NVDA", "AAPL", "4", "2.45")
    clock.set_time(T0 + dt.timedelta(seconds=10))
    services.clear_batch(None, "auc")
    shown = {row.summary for row in event_log(Session.objects.get(id="auc"))}
    assert any(line.startswith(f"order {ask.id}: alice gives up to 10 AAPL for NVDA at 0.39") for line in shown)
    assert f"order {gone.id}: sealed until its batch clears" in shown  # cancelled: it never met the market
