"""A settled session's results, one computation for the page, the API and payouts.csv: per holder the
payout, the initial allocation's value at the same fixing, the P&L between them (exact), and a rank by
P&L where ties share a rank (1, 1, 3); Σ payouts = q·S and Σ P&L = 0 exactly."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import create_demo
from ledger.models import Event
from markets import domain, services, tokens
from markets.errors import DomainError
from markets.models import Session
from markets.selectors import export, results
from markets.selectors.results import Entry, competition_ranks, ranked

PRICES = {"AAPL": "190.1", "NVDA": "480.2", "META": "350.000001", "ORCL": "104.3"}


def api_get(user, path: str):
    return Client().get(f"/api/v1{path}", headers={"Authorization": f"Bearer {tokens.create_token(user)[1]}"})


def settle(users, sid: str = "demo", prices=PRICES) -> None:
    services.settle_session(users["org"], sid, prices=prices)


def trade(users, taker: str, maker: str, give: str, get: str, qty: str, rate: str, sid: str = "demo") -> None:
    rfq = services.request_rfq(users[taker], sid, give, get, qty)
    services.accept_quote(users[taker], services.provide_quote(users[maker], rfq.id, rate).id)


# ---------------------------------------------------------------- the ranking rule


@given(st.lists(st.integers(-(10**30), 10**30) | st.sampled_from([0, 5, -5]), max_size=30))
def test_ranks_are_a_competition_ranking_of_the_values(values):
    ranks = competition_ranks(values)
    for value, rank in zip(values, ranks, strict=True):
        assert rank == 1 + sum(1 for other in values if other > value)


def test_ties_share_a_rank_and_the_next_rank_skips():
    assert competition_ranks([5, 5, 3]) == [1, 1, 3]
    assert competition_ranks([0, 7, 0, 0]) == [2, 1, 2, 2]
    assert competition_ranks([]) == []


@st.composite
def holders(draw):
    legs = draw(st.integers(1, 4))
    prices = draw(st.lists(st.integers(1, 10**13), min_size=legs, max_size=legs))
    n = draw(st.integers(1, 12))
    row = st.lists(st.integers(0, 10**15), min_size=legs, max_size=legs)
    initial = draw(st.lists(row, min_size=n, max_size=n))
    # What trading does: move quantities between holders, keeping each leg's total (q) as it was.
    x = [list(r) for r in initial]
    for _ in range(draw(st.integers(0, 20))):
        a, b, k = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1)), draw(st.integers(0, legs - 1))
        moved = draw(st.integers(0, x[a][k]))
        x[a][k] -= moved
        x[b][k] += moved
    entries = [
        Entry(i + 1, f"u{i}", draw(st.sampled_from(["Zoë", "ann", "Bob", "🚀"])), "trader", tuple(x[i]),
              tuple(initial[i]), domain.payout(x[i], prices))
        for i in range(n)
    ]  # fmt: skip
    return entries, prices


@given(holders())
def test_results_rank_by_pnl_and_sum_to_q_s_and_zero(drawn):
    entries, prices = drawn
    rows = ranked(entries, prices)
    q = [sum(e.initial[k] for e in entries) for k in range(len(prices))]
    assert sum(r.payout for r in rows) == domain.payout(q, prices)
    assert sum(r.pnl for r in rows) == 0
    assert sum(r.initial_value for r in rows) == domain.payout(q, prices)
    for r in rows:
        assert r.pnl == r.payout - r.initial_value
        assert r.rank == 1 + sum(1 for o in rows if o.pnl > r.pnl)
    assert [r.rank for r in rows] == sorted(r.rank for r in rows)  # best first


# ---------------------------------------------------------------- a real session: selector, API, CSV, page


@pytest.mark.django_db
def test_a_session_with_tied_pnls_ranks_them_together(users, demo):
    """alice and bob trade nothing: both P&L 0 (equal), so the maker who gained ranks 1, the two tied
    traders 2 and 2, the maker who lost 4."""
    trade(users, "alice", "mm", "AAPL", "NVDA", "10", "0.3")  # alice gives 10 AAPL for only 3 NVDA
    trade(users, "alice", "mm", "NVDA", "AAPL", "3", "3.3333333")  # and buys them back: nearly where she began
    trade(users, "bob", "mm2", "META", "ORCL", "2", "10")  # bob gets far more than META is worth
    trade(users, "bob", "mm2", "ORCL", "META", "20", "0.1")  # and gives it all back: where he began
    settle(users)
    got = results.session_results(Session.objects.get(id="demo"))
    by_name = {r.username: r for r in got.rows}
    assert by_name["bob"].pnl == 0 and by_name["mm2"].pnl == 0
    assert by_name["alice"].pnl < 0 < by_name["mm"].pnl
    assert [(r.username, r.rank) for r in got.rows] == [("mm", 1), ("bob", 2), ("mm2", 2), ("alice", 4)]
    assert got.exact and got.total_pnl == 0 and got.total_payout == got.expected


@pytest.mark.django_db
def test_the_api_page_and_csv_give_the_same_results(users, demo):
    trade(users, "alice", "mm", "AAPL", "NVDA", "10", "0.62")
    trade(users, "bob", "mm2", "META", "ORCL", "5", "1.333333")
    for who in ("alice", "eve"):  # a participant, and a watcher of this public session: as the payouts
        assert api_get(users[who], "/sessions/demo/results").status_code == 409
    before = api_get(users["alice"], "/sessions/demo/results").json()
    assert before["code"] == "not_settled"
    settle(users)
    answer = api_get(users["eve"], "/sessions/demo/results")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["prices"] == {leg: domain.price_str(domain.parse_price(p)) for leg, p in PRICES.items()}
    rows = body["results"]
    payouts = {p["username"]: p["amount"] for p in api_get(users["eve"], "/sessions/demo/payouts").json()["payouts"]}
    assert {r["username"]: r["payout"] for r in rows} == payouts  # the settlement's own strings
    for r in rows:
        assert Decimal(r["pnl"]) == Decimal(r["payout"]) - Decimal(r["initial_value"])
        assert len(r["pnl"].partition(".")[2]) == 12 and len(r["initial_value"].partition(".")[2]) == 12
        assert r["rank"] == 1 + sum(1 for o in rows if Decimal(o["pnl"]) > Decimal(r["pnl"]))
    totals = body["totals"]
    assert totals["pnl"] == "0.000000000000" and totals["exact"] is True
    assert totals["payout"] == totals["expected"] == totals["initial_value"]
    assert Decimal(totals["payout"]) == sum(Decimal(r["payout"]) for r in rows)
    # payouts.csv: the same rows in the same order, with each holder's x at the settlement
    text, _ = export.csv_text(export.SessionExport(Session.objects.get(id="demo")).table("payouts"))
    table = list(csv.DictReader(io.StringIO(text, newline="")))
    people, total = table[:-1], table[-1]
    assert list(table[0]) == ["rank", "user_id", "username", "name", "role", "x:AAPL", "x:NVDA", "x:META",
                              "x:ORCL", "payout", "initial_value", "pnl", "cash"]  # fmt: skip
    assert [(p["rank"], p["user_id"], p["username"], p["name"], p["role"], p["payout"], p["initial_value"], p["pnl"])
            for p in people] == [(str(r["rank"]), str(r["user_id"]), r["username"], r["name"], r["role"],
                                  r["payout"], r["initial_value"], r["pnl"]) for r in rows]  # fmt: skip
    assert (total["name"], total["payout"], total["pnl"]) == ("total", totals["payout"], "0.000000000000")
    # the page: ranks, names, payouts and P&L in the same order, the check said in words
    client = Client()
    client.force_login(users["eve"])
    page = client.get(reverse("markets:results", args=["demo"]))
    assert page.status_code == 200
    text = page.content.decode()
    where = [text.index(f'data-user="{r["username"]}"') for r in rows]
    assert where == sorted(where)
    assert "✓ exact:" in text and "Σ P&amp;L = 0" in text
    assert f'title="{rows[0]["pnl"]}"' in text


@pytest.mark.django_db
def test_before_the_settlement_the_page_says_so_and_whoever_may_not_see_the_session_is_refused(users):
    create_demo(users, "priv", visibility="participants")
    client = Client()
    client.force_login(users["alice"])
    page = client.get(reverse("markets:results", args=["priv"]))
    assert page.status_code == 409 and "not settled" in page.content.decode()
    settle(users, "priv")
    assert client.get(reverse("markets:results", args=["priv"])).status_code == 200
    assert api_get(users["eve"], "/sessions/priv/results").status_code in (403, 404)
    outsider = Client()
    outsider.force_login(users["eve"])
    assert outsider.get(reverse("markets:results", args=["priv"])).status_code in (403, 404)
    assert api_get(users["alice"], "/sessions/nope/results").status_code == 404


@pytest.mark.django_db
def test_the_floor_links_the_results_and_shows_each_rank(users, demo):
    trade(users, "alice", "mm", "AAPL", "NVDA", "10", "0.62")
    settle(users)
    client = Client()
    client.force_login(users["bob"])
    floor = client.get(reverse("markets:floor", args=["demo"])).content.decode()
    settlement = floor[floor.index('id="settlement"') : floor.index('id="legs"')]
    assert reverse("markets:results", args=["demo"]) in settlement
    ranks = {r.username: r.rank for r in results.session_results(Session.objects.get(id="demo")).rows}
    for username, rank in ranks.items():
        row = settlement[settlement.index(f'data-user="{username}"') :]
        assert f'<td class="num">{rank}</td></tr>' in row[: row.index("</tr>") + 5]
    org = Client()
    org.force_login(users["org"])
    monitor = org.get(reverse("markets:monitor", args=["demo"])).content.decode()
    assert reverse("markets:results", args=["demo"]) in monitor


@pytest.mark.django_db
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    trades=st.lists(
        st.tuples(st.sampled_from(["alice", "bob"]), st.sampled_from(["mm", "mm2"]), st.integers(0, 3),
                  st.integers(1, 3), st.integers(1, 400), st.integers(1, 300)),
        max_size=5,
    ),
    prices=st.lists(st.integers(1, 10**9), min_size=4, max_size=4),
)  # fmt: skip
def test_any_trades_at_any_fixing_give_pnls_summing_to_zero_and_competition_ranks(users, trades, prices):
    sid = f"hyp{Event.objects.count()}"  # a fresh session per example (the log is append-only)
    create_demo(users, sid)
    legs = ["AAPL", "NVDA", "META", "ORCL"]
    for taker, maker, give, step, qty, rate in trades:
        get = (give + step) % 4
        try:
            trade(users, taker, maker, legs[give], legs[get], str(Decimal(qty) / 10), str(Decimal(rate) / 100), sid)
        except DomainError:
            pass  # a holding too small for this one: refused, nothing written
    settle(users, sid, {leg: domain.price_str(p) for leg, p in zip(legs, prices, strict=True)})
    got = results.session_results(Session.objects.get(id=sid))
    assert got.total_pnl == 0 and got.total_payout == got.expected and got.exact
    pnls = [r.pnl for r in got.rows]
    assert [r.rank for r in got.rows] == sorted(competition_ranks(pnls))
    assert [r.rank for r in got.rows] == [1 + sum(1 for p in pnls if p > r.pnl) for r in got.rows]
