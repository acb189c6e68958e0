"""Corporate actions as people see them (#33): the floor's banner before and after the cut, each holder's
cash in "My position", the log's one-line summaries, the monitor's list and cash column, and the push
registry (a scheduled action refreshes the status line and the log only)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from conftest import create_demo
from ledger import clock
from markets import selectors, services
from markets.models import CorporateAction, Participant
from markets.push import panels
from markets.selectors import action_banner as actions
from markets.selectors.monitor import monitor_context
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 7, 13, 0, tzinfo=dt.UTC)
CUT = T0 + dt.timedelta(minutes=5)
U = 10**6
PRICES = {"AAPL": 200 * U, "NVDA": 1_200 * U, "META": 500 * U, "ORCL": 150 * U}


@pytest.fixture
def ca(users):
    clock.set_time(T0)
    made = create_demo(users, "ca", q=[100, 61, 80, 120])  # NVDA 15.25 each: a 1-for-7 leaves fractions
    Tick.objects.bulk_create(Tick(session_id="ca", symbol=leg, at=T0, price=p, source="t") for leg, p in PRICES.items())
    yield made
    clock.set_time(None)


def banner() -> list[str]:
    return [a.said for a in selectors.floor_context("ca", {"status"})["actions"]]


def page(user, path: str = "/sessions/ca/") -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def test_the_banner_announces_a_split_before_its_cut_and_says_what_it_did_after(users, ca):
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    clock.set_time(CUT - dt.timedelta(minutes=3))
    assert banner() == ["NVDA splits 10:1 at 13:05 UTC (in 3 min): open RFQs and orders on NVDA are cancelled then"]
    clock.set_time(CUT + dt.timedelta(seconds=1))
    assert "due now: waiting for the scheduler" in banner()[0]
    services.run_due()
    assert banner() == ["NVDA split 10:1 at 13:05 UTC: q 61 → 610, no cash in lieu"]
    checks = selectors.floor_context("ca", {"pool"})["pool"].checks
    assert all(c.ok for c in checks), [c.detail for c in checks]  # a split's units are no trade's: 3 holds
    html = page(users["bob"])
    assert 'data-testid="actions-banner"' in html and "NVDA split 10:1 at 13:05 UTC: q 61 → 610" in html
    clock.set_time(CUT + actions.RECENT + dt.timedelta(seconds=2))
    assert banner() == []  # applied a while ago: the monitor lists it, the floor no longer


def test_a_reverse_split_with_cash_in_lieu_says_the_total_and_each_holder_sees_their_cash(users, ca):
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="1/7")
    clock.set_time(CUT + dt.timedelta(seconds=1))
    services.run_due()
    result = CorporateAction.objects.get(session_id="ca", number=1).result
    total = sum(actions.money_base(c) for c in result["cash_by_id"].values())
    assert total > 0
    leftover = len(result["leftover"])
    spread = f", {leftover} leftover base unit{'s' if leftover != 1 else ''} by largest remainder" if leftover else ""
    assert banner() == [
        f"NVDA reverse-split 1:7 at 13:05 UTC: q 61 → 8.714285, {actions.money(total)} of cash in lieu paid{spread}"
    ]
    alice = Participant.objects.get(session_id="ca", username="alice")
    assert alice.cash != "0"
    html = page(users["alice"])
    mine = html.split('data-testid="my-position"', 1)[1].split("</section>", 1)[0]
    cash = actions.cash_by_user("ca")[alice.user_id]
    assert f'data-testid="my-cash" title="{cash}">{format(cash.normalize(), "f")}<' in mine


def test_a_holder_without_cash_sees_no_cash_figure(users, ca):
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    clock.set_time(CUT + dt.timedelta(seconds=1))
    services.run_due()
    assert 'data-testid="my-cash"' not in page(users["alice"])


def test_a_dividend_in_the_banner_and_the_holders_cash(users, ca):
    services.schedule_action(users["org"], "ca", "dividend", "AAPL", CUT, amount="0.25")
    clock.set_time(T0 + dt.timedelta(seconds=15))
    assert banner() == [
        "AAPL pays a dividend of 0.25 per unit at 13:05 UTC (in 5 min): each holder's cash is credited x · amount;"
        " open RFQs and orders on AAPL are cancelled then"
    ]
    clock.set_time(CUT)
    services.run_due()
    assert banner() == [
        "AAPL paid a dividend of 0.25 per unit at 13:05 UTC: 25 credited to the holders' cash, paid with the payout"
    ]
    assert 'data-testid="my-cash" title="6.250000000000">6.25<' in page(users["alice"])


def test_the_log_says_each_step_of_an_action_in_a_line(users, ca):
    rfq = services.request_rfq(users["alice"], "ca", "NVDA", "AAPL", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "5.9", ttl_seconds=600)
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="10/1")
    services.schedule_action(users["org"], "ca", "merger", "ORCL", CUT, into="AAPL", ratio="0.75")
    clock.set_time(CUT)
    services.run_due()
    said = {(e.type, e.summary) for e in selectors.event_log(ca, limit=50)}
    why = "(a corporate action on its leg, at its cut)"
    assert ("CorporateActionScheduled", "action 1 scheduled: NVDA splits 10:1 at 2030-06-07 13:05:00 UTC") in said
    assert ("CorporateActionApplied", "action 1 applied: NVDA split 10:1: q 61 → 610, no cash in lieu") in said
    assert (
        "CorporateActionApplied",
        "action 2 applied: ORCL merged into another leg at 3/4 per unit: q ORCL 120 → 0, the other leg 100 → 190,"
        " no cash in lieu",
    ) in said
    assert ("QuoteWithdrawn", f"quote {quote.id} withdrawn {why}") in said
    assert ("RFQCancelled", f"RFQ {rfq.id} cancelled {why}") in said
    order = {"order_id": 7, "user_id": users["bob"].id, "reason": "corporate_action"}
    assert selectors.summarize("OrderCancelled", order, {users["bob"].id: "Bob"}) == f"order 7 of Bob cancelled {why}"
    cash = {"action": 3, "kind": "merger", "leg": "META", "q_before": [1, 80 * U], "q_after": [1, 0]}
    cash["cash_by_id"] = {"5": "41600.000000000000"}
    assert selectors.summarize("CorporateActionApplied", cash) == (
        "action 3 applied: META bought out in cash: q 80 → 0, 41600 paid as cash with the payout"
    )
    dividend = {"action": 4, "kind": "dividend", "leg": "AAPL", "cash_by_id": {"5": "1.5", "6": "1"}}
    assert selectors.summarize("CorporateActionApplied", dividend) == (
        "action 4 applied: AAPL dividend: 2.5 credited to the holders' cash, paid with the payout"
    )
    renamed = {"action": 5, "kind": "rename", "leg": "META", "to": "FB"}
    assert selectors.summarize("CorporateActionApplied", renamed) == "action 5 applied: META renamed FB"


def test_the_monitor_lists_scheduled_and_applied_actions_and_each_participants_cash(users, ca):
    services.schedule_action(users["org"], "ca", "split", "NVDA", CUT, ratio="1/7")
    services.schedule_action(users["org"], "ca", "merger", "META", CUT + dt.timedelta(hours=1), cash="520")
    html = page(users["org"], "/sessions/ca/monitor")
    assert 'data-testid="monitor-actions"' in html and 'data-testid="cash-alice"' not in html  # nobody paid yet
    clock.set_time(CUT)
    services.run_due()
    context = monitor_context("ca")
    split, merger = context["actions"]
    assert (split.status, split.params, split.q_moved) == ("applied", "ratio 1/7", [("NVDA", "61", "8.714285")])
    assert split.cash_total and split.scaled
    assert (merger.status, merger.params, merger.due) == ("scheduled", "cash 520.000000", False)
    assert context["pays_cash"]
    alice = Participant.objects.get(session_id="ca", username="alice")
    row = next(r for r in context["rows"] if r.username == "alice")
    assert row.cash == actions.cash_by_user("ca")[alice.user_id]
    html = page(users["org"], "/sessions/ca/monitor")
    assert 'data-testid="monitor-action-1" data-status="applied"' in html
    assert 'data-testid="monitor-action-2" data-status="scheduled"' in html
    assert f'data-testid="monitor-action-cash-1">{split.cash_total}<' in html
    assert 'data-testid="cash-alice"' in html


def test_a_scheduled_action_refreshes_the_status_line_and_the_log_and_an_applied_one_the_whole_floor():
    assert panels.stale(["CorporateActionScheduled"]) == {"status", "events"}
    scheduled = {"seq": 9, "version": 5, "type": "CorporateActionScheduled", "payload": {"action": 1}}
    change = panels.delta([scheduled])
    assert change is not None and change.panels == {"status", "events"} and not change.users
    applied = [
        {"seq": 10, "version": 6, "type": "RFQCancelled", "payload": {"rfq_id": 3, "reason": "corporate_action"}},
        {"seq": 11, "version": 7, "type": "CorporateActionApplied", "payload": {"action": 1}},
    ]
    assert panels.stale(e["type"] for e in applied) == panels.EVERYTHING
    assert panels.delta(applied) is None  # q, every holding, the board and the orders: the whole floor
