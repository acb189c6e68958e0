"""Corporate actions through the services (the first part of #33): scheduled by the organiser, applied by
the scheduler at the cut exactly once, q and every holding moved by the pure rule, cash in lieu and
dividends credited, the open business on the leg cancelled, payouts = x . S + cash summing to q . S + the
cash paid in, and verify_ledger (replay, the quick check, the action made again) content."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection

from conftest import create_demo
from ledger import clock, store
from markets import audit, services
from markets.domain import DomainError
from markets.errors import Forbidden
from markets.models import RFQ, CorporateAction, Participant, Payout, Session, stream_name
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 7, 13, 0, tzinfo=dt.UTC)
CUT = T0 + dt.timedelta(minutes=5)
U = 10**6
PRICES = {"AAPL": 200 * U, "NVDA": 1_200 * U, "META": 500 * U, "ORCL": 150 * U}


def session(users, **kwargs) -> Session:
    clock.set_time(T0)
    made = create_demo(users, "ca", **kwargs)
    Tick.objects.bulk_create(Tick(session_id="ca", symbol=leg, at=T0, price=p, source="t") for leg, p in PRICES.items())
    return made


def holdings(name: str) -> dict[str, int]:
    p = Participant.objects.get(session_id="ca", username=name)
    return {h.leg: h.qty for h in p.holdings.all()}


def at_the_cut() -> list:
    clock.set_time(CUT + dt.timedelta(seconds=1))
    return services.run_due()


def test_a_ten_for_one_split_moves_q_and_every_holding_at_its_cut_once(users):
    session(users)
    action = services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    assert action.status == "scheduled" and Session.objects.get(id="ca").q[1] == 60 * U
    assert ("ca", "action 1 applied") in at_the_cut()
    assert Session.objects.get(id="ca").q == [100 * U, 600 * U, 80 * U, 120 * U]
    assert holdings("alice")["NVDA"] == 150 * U and holdings("mm")["NVDA"] == 150 * U
    assert ("ca", "action 1 applied") not in services.run_due()  # exactly once
    applied = CorporateAction.objects.get(session_id="ca", number=1)
    assert applied.status == "applied" and applied.result["price_after"] == 120 * U
    assert audit.verify_session("ca").ok
    if connection.vendor == "sqlite":  # the quick check reads the SQLite file itself
        assert all(r.ok for r in audit.verify_quick(["ca"]))


def test_a_reverse_split_pays_cash_in_lieu_and_the_settlement_pays_it_with_the_payout(users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    session(users, q=[100, 61, 80, 120])  # NVDA 15.25 each: a 1-for-7 leaves fractions
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="1/7")
    at_the_cut()
    made = CorporateAction.objects.get(session_id="ca", number=1).result
    assert sum(int(x) for x in Session.objects.get(id="ca").q[1:2]) == 61 * U // 7  # floor(q / 7)
    assert made["cash_by_id"]  # the fractions below the base unit, paid at 1,200 x 7 = 8,400
    services.settle_session(users["org"], "ca", prices={"AAPL": "200", "NVDA": "8400", "META": "500", "ORCL": "150"})
    cash = sum(Decimal(c) for c in Participant.objects.filter(session_id="ca").values_list("cash", flat=True))
    paid = sum(Decimal(a) for a in Payout.objects.filter(session_id="ca").values_list("amount", flat=True))
    s = Session.objects.get(id="ca")
    q_s = sum(Decimal(x) * p for x, p in zip(s.q, (200, 8400, 500, 150), strict=True)) / U
    assert paid == q_s + cash
    assert audit.verify_session("ca").ok


def test_a_dividend_is_credited_to_holders_and_paid_at_the_settlement(users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    session(users)
    services.schedule_action(users["org"], "ca", "dividend", "AAPL", CUT, amount="0.25")
    at_the_cut()
    alice = Participant.objects.get(session_id="ca", username="alice")
    assert alice.cash == "6.250000000000"  # 25 AAPL x 0.25
    services.settle_session(users["org"], "ca", prices={leg: str(p // U) for leg, p in PRICES.items()})
    payout = Payout.objects.get(session_id="ca", participant=alice)
    # 25 x 200 + 15 x 1,200 + 20 x 500 + 30 x 150 = 37,500, plus the dividend.
    assert payout.amount == "37506.250000000000"
    assert audit.verify_session("ca").ok


def test_mergers_empty_the_leg_into_cash_or_into_another_leg(users):
    session(users)
    services.schedule_action(users["org"], "ca", "merger", "META", CUT, cash="520")
    services.schedule_action(users["org"], "ca", "merger", "ORCL", CUT, into="AAPL", ratio="0.75")
    at_the_cut()
    s = Session.objects.get(id="ca")
    assert s.q == [100 * U + 90 * U, 60 * U, 0, 0]  # 120 ORCL x 0.75 = 90 AAPL more
    assert holdings("bob") == {"AAPL": 25 * U + 22_500_000, "NVDA": 15 * U, "META": 0, "ORCL": 0}
    assert Participant.objects.get(session_id="ca", username="bob").cash == "10400.000000000000"  # 20 x 520
    assert audit.verify_session("ca").ok


def test_the_open_rfqs_on_the_leg_are_cancelled_at_the_cut_and_others_stand(users):
    session(users)
    on_leg = services.request_rfq(users["alice"], "ca", "NVDA", "AAPL", "1")
    services.provide_quote(users["mm"], on_leg.id, "5.9")
    other = services.request_rfq(users["bob"], "ca", "META", "ORCL", "1")
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="2/1")
    at_the_cut()
    assert RFQ.objects.get(id=on_leg.id).status == "cancelled" and RFQ.objects.get(id=other.id).status == "open"
    assert audit.verify_session("ca").ok


@pytest.mark.parametrize(
    ("kind", "leg", "params", "code"),
    [
        ("spinout", "NVDA", {}, "invalid_action"),
        ("split", "NVDA", {"ratio": "0"}, "invalid_ratio"),
        ("split", "NVDA", {"ratio": "1/1"}, "invalid_ratio"),
        ("split", "TSLA", {"ratio": "2/1"}, "unknown_leg"),
        ("dividend", "AAPL", {"amount": "-1"}, "invalid_number"),
        ("merger", "AAPL", {"into": "AAPL", "ratio": "1"}, "same_leg"),
        ("merger", "AAPL", {"cash": "1", "into": "ORCL"}, "invalid_action"),
        ("split", "NVDA", {"ratio": "2/1", "cash": "1"}, "invalid_action"),
    ],
)
def test_a_bad_action_is_refused_and_nothing_is_written(users, kind, leg, params, code):
    session(users)
    before = store.head(stream_name("ca")).version
    with pytest.raises(DomainError) as info:
        services.schedule_action(users["org"], "ca", kind, leg, CUT, **params)
    assert info.value.code == code
    assert store.head(stream_name("ca")).version == before and not CorporateAction.objects.exists()


def test_only_the_organiser_schedules_and_only_for_a_cut_to_come(users):
    session(users)
    with pytest.raises(Forbidden):
        services.schedule_action(users["alice"], "ca", "split", "NVDA", CUT, ratio="2/1")
    with pytest.raises(DomainError) as info:
        services.schedule_action(users["org"], "ca", "split", "NVDA", T0 - dt.timedelta(seconds=1), ratio="2/1")
    assert info.value.code == "invalid_time"


def test_verify_ledger_makes_each_action_again_and_finds_a_forged_one(users):
    session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    at_the_cut()
    events = list(store.iter_stream(stream_name("ca")))
    assert audit._action_problems(events) == []
    applied = next(e for e in events if e.type == "CorporateActionApplied")
    forged = applied.data
    forged["deltas_by_id"]["1"] = [0, 1, 0, 0]  # one holder given a unit the rule does not give
    applied.payload = json.dumps(forged)
    assert any("differs in deltas_by_id" in p for p in audit._action_problems(events))


# ---------------------------------------------------------------- prices across a split


def test_after_a_split_every_reader_sees_the_earlier_ticks_at_the_new_level(users):
    from markets.selectors.prices import latest_prices, price_history, prices_at

    s = session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    at_the_cut()
    s = Session.objects.get(id="ca")
    assert latest_prices(s)["NVDA"] == 120 * U and latest_prices(s)["AAPL"] == 200 * U
    assert prices_at(s, CUT + dt.timedelta(seconds=2))[0][1] == 120 * U
    assert price_history(s).recent["NVDA"][-1][1] == 120 * U  # the chart: one level either side of the cut
    Tick.objects.create(session_id="ca", symbol="NVDA", at=CUT + dt.timedelta(seconds=3), price=121 * U, source="t")
    assert latest_prices(Session.objects.get(id="ca"))["NVDA"] == 121 * U  # a tick after the cut is as it is


def test_a_fixing_whose_window_spans_the_split_reads_one_level_and_verify_ledger_redoes_it(users):
    t2 = CUT + dt.timedelta(minutes=1)
    session(users, end_mode="timed", t2=t2, fixing_rule={"rule": "twap", "window": 600})
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    at_the_cut()
    Tick.objects.create(session_id="ca", symbol="NVDA", at=CUT + dt.timedelta(seconds=31), price=130 * U, source="t")
    clock.set_time(t2)
    services.run_due()
    settled = Session.objects.get(id="ca").settlement
    # 1,200 / 10 = 120 in force from the window's start to CUT+31 s, then 130 for the last 29 s: never 1,200.
    assert 120 * U < settled.prices["NVDA"] < 130 * U
    record = settled.fixing["legs"]["NVDA"]
    assert record["splits"] and record["prices"][0] == 1_200 * U  # the tick as stored, adjusted by the record
    assert audit.verify_session("ca").ok


def test_the_sim_oracle_goes_on_from_the_level_after_a_split(users, monkeypatch):
    """run_oracle's own scheduler applies the split and places the session again: its next ticks walk on
    from a tenth of the price, not from the old level."""
    from markets.management.commands import run_oracle
    from markets.tests.test_run_oracle_feeds import FakeTime
    from markets.tests.test_run_oracle_feeds import run as run_command

    fake = FakeTime()
    monkeypatch.setattr(run_oracle.Command, "runner_options", {"sleep": fake.sleep, "monotonic": fake.monotonic})
    session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    clock.set_time(CUT + dt.timedelta(seconds=1))
    run_command("--session-id", "ca", "--seed", "3", "--max-ticks", "4", "--quiet")
    assert CorporateAction.objects.get(session_id="ca").status == "applied"
    last = Tick.objects.filter(session_id="ca", symbol="NVDA").order_by("-id").first()
    assert 60 * U < last.price < 240 * U  # near 120, the level after the cut (the old one was 1,200)
    assert audit.verify_session("ca").ok


def test_results_stay_exact_and_an_untraded_holder_gains_nothing_across_a_split_and_a_dividend(users, settings):
    """The initial allocation is carried through each action as the holdings are, so P&L compares like with
    like: nobody traded, so every P&L is 0, and the payouts sum to q . S plus the dividend paid in."""
    from markets.selectors.results import session_results

    settings.ALLOW_MANUAL_SETTLE = True
    session(users)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    services.schedule_action(users["org"], "ca", "dividend", "NVDA", CUT + dt.timedelta(seconds=1), amount="0.01")
    clock.set_time(CUT + dt.timedelta(seconds=2))
    services.run_due()
    services.settle_session(users["org"], "ca", prices={"AAPL": "200", "NVDA": "121.79", "META": "500", "ORCL": "150"})
    results = session_results(Session.objects.get(id="ca"))
    assert results.exact and all(row.pnl == 0 for row in results.rows)
    # 600 NVDA x 0.01 = 6 paid into the pool on top of q . S.
    q_s = (100 * 200_000_000 + 600 * 121_790_000 + 80 * 500_000_000 + 120 * 150_000_000) * U  # money base units
    assert results.total_payout == results.expected == q_s + 6 * U * U
    assert audit.verify_session("ca").ok


# ---------------------------------------------------------------- at the instant of the cut


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_an_accept_at_the_instant_of_the_cut_comes_before_or_after_it_never_half(users, round_):
    """Threads on a real database: alice accepts a quote giving NVDA while the scheduler applies a 10:1 split
    of NVDA. Either the trade comes first (and the split scales what it left) or the split does (the RFQ is
    cancelled and the accept refused); the holdings are one of those two outcomes exactly, and the ledger
    verifies."""
    from markets.tests.test_concurrency import run_together

    session(users)
    clock.set_time(CUT - dt.timedelta(seconds=10))
    rfq = services.request_rfq(users["alice"], "ca", "NVDA", "AAPL", "5")
    quote = services.provide_quote(users["mm"], rfq.id, "4")
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    clock.set_time(CUT)
    results = run_together(
        2, lambda i: services.accept_quote(users["alice"], quote.id) if i == 0 else services.apply_due_actions()
    )
    accepted, applied = results
    assert applied[0] == "ok" and CorporateAction.objects.get(session_id="ca").status == "applied"
    events = [e.type for e in store.iter_stream(stream_name("ca"))]
    if accepted[0] == "ok":  # the trade first: 15 - 5 = 10 NVDA, then x10
        assert events.index("TradeExecuted") < events.index("CorporateActionApplied")
        assert holdings("alice")["NVDA"] == 100 * U and holdings("alice")["AAPL"] == 45 * U
    else:  # the split first: the RFQ cancelled at the cut, the accept refused, nothing traded
        assert isinstance(accepted[1], DomainError) and "TradeExecuted" not in events
        assert RFQ.objects.get(id=rfq.id).status == "cancelled"
        assert holdings("alice")["NVDA"] == 150 * U and holdings("alice")["AAPL"] == 25 * U
    assert audit.verify_session("ca").ok


def test_the_chart_marks_a_splits_cut_and_draws_both_sides_at_one_level(users):
    from markets.selectors.chart import price_chart

    session(users)
    Tick.objects.create(session_id="ca", symbol="NVDA", at=T0 + dt.timedelta(minutes=2), price=1_210 * U, source="t")
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    at_the_cut()
    Tick.objects.create(session_id="ca", symbol="NVDA", at=CUT + dt.timedelta(seconds=2), price=121 * U, source="t")
    Tick.objects.create(session_id="ca", symbol="AAPL", at=CUT + dt.timedelta(seconds=2), price=200 * U, source="t")
    chart = price_chart(Session.objects.get(id="ca"))
    assert [said for _, said in chart.cuts] == ["NVDA 10:1"]
    nvda = next(s for s in chart.series if s.leg == "NVDA")
    assert nvda.last_index == Decimal("100.83")  # 121 over 120 (1,200 / 10): no tenfold drop at the cut
