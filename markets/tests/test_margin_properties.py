"""Bounded shorting as properties: the margin rule's worst case against brute force over the box, the
deleveraging and the haircut as exact rules, and, through the services on a real database, random trades
and price paths (jumps far beyond the band, liquidations after every tick) ending in a settlement far
outside the box: nobody is paid below zero, the payouts sum to q.S exactly, a refusal writes nothing,
the log verifies and replay rebuilds every liquidation."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db import transaction
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, domain, projections, services
from markets.domain import liquidation
from markets.domain import margin as rules
from markets.errors import DomainError
from markets.models import Payout, Settlement
from oracle.models import Tick

PURE = settings(deadline=None, max_examples=150)
THROUGH_SERVICES = settings(
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
BANDS = ["0.01", "0.1", "0.15", "0.333", "0.5", "0.9"]


# ---------------------------------------------------------------- pure rules


@st.composite
def positions(draw, max_legs: int = 5):
    n = draw(st.integers(1, max_legs))
    x = draw(st.lists(st.integers(-(10**9), 10**9), min_size=n, max_size=n))
    prices = draw(st.lists(st.integers(1, 10**9), min_size=n, max_size=n))
    band = draw(st.sampled_from(BANDS))
    initial = draw(st.sampled_from(["0", "0.05", "0.5"]))
    return x, prices, rules.MarginSettings("0.2", band, initial)


@PURE
@given(positions())
def test_the_worst_case_is_the_least_value_over_every_vertex_of_the_box(case):
    x, prices, margin = case
    m = margin.band
    vertices = itertools.product(*[(p * (1 - m), p * (1 + m)) for p in prices])
    brute = min(sum((v * s for v, s in zip(x, vertex, strict=True)), Fraction(0)) for vertex in vertices)
    judged = rules.assess(x, prices, margin, [f"L{k}" for k in range(len(x))])
    assert judged.w == brute
    shorts = {k: -v * prices[k] for k, v in enumerate(x) if v < 0}
    assert judged.requirement == margin.initial * sum(shorts.values())
    if shorts:
        assert shorts[judged.binding] == max(shorts.values())
        assert judged.status == ("liquidated" if brute < 0 else "reduce_only" if brute < judged.requirement else "ok")
    else:
        assert judged.binding is None and judged.status == "ok"


@st.composite
def books_with_a_short(draw):
    """A victim short of some legs, the others' holdings non-negative and covering its shorts (as the pool
    always does: every column sums to q >= 0)."""
    n = draw(st.integers(1, 4))
    holders = draw(st.integers(1, 5))
    others = {
        u: draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)) for u in range(2, 2 + holders)
    }  # fmt: skip
    victim = []
    for k in range(n):
        held = sum(row[k] for row in others.values())
        victim.append(draw(st.integers(-held, 10**6)))
    assume(any(v < 0 for v in victim))
    prices = draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n))
    return {1: victim, **others}, prices


@PURE
@given(books_with_a_short())
def test_deleveraging_is_zero_sum_closes_every_short_and_takes_no_more_than_is_held(case):
    holdings, prices = case
    x = holdings[1]
    plan = liquidation.plan_deleverage(1, holdings, prices)
    n = len(prices)
    for k in range(n):
        assert sum(row[k] for row in plan.deltas.values()) == 0, "zero-sum on every leg"
    after = [v + d for v, d in zip(x, plan.deltas[1], strict=True)]
    assert all(a >= 0 for a in after), "the victim is left with no short (and no long below zero)"
    assert all(after[k] == 0 for k in range(n) if x[k] < 0), "each short is closed, no more"
    for user, delta in plan.deltas.items():
        if user == 1:
            continue
        assert all(holdings[user][k] + delta[k] >= 0 for k in range(n)), "never takes more than a holder holds"
        assert all(delta[k] >= 0 for k in range(n) if x[k] >= 0), "a holder is paid only in the victim's longs"
    for k in range(n):
        paid = sum(row.get(k, 0) for row in plan.paid.values())
        assert paid <= max(0, x[k]), "pays at most the victim's longs"
        assert paid == -plan.deltas[1][k] if x[k] > 0 else paid == 0
    taken = sum(units for _, _, units in plan.moves)
    assert taken == sum(-v for v in x if v < 0)
    longs = sum(v * prices[k] for k, v in enumerate(x) if v > 0)
    shorts = sum(-v * prices[k] for k, v in enumerate(x) if v < 0)
    assert plan.bankrupt == (longs < shorts)
    if plan.bankrupt:
        assert all(a == 0 for a in after), "bankrupt: every long goes"


@PURE
@given(st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=8), st.integers(0, 10**15))
def test_the_haircut_pays_nobody_below_zero_and_sums_to_q_s_exactly(values, extra):
    gross = dict(enumerate(values))
    total = sum(values)
    if total < 0:  # q.S >= 0: the holders' x.S sum to it
        gross[len(values)] = -total + extra
        total = extra
    cut = liquidation.haircut(gross, total)
    assert sum(cut.paid.values()) == total
    assert all(0 <= cut.paid[u] <= max(0, gross[u]) for u in gross)
    if all(v >= 0 for v in gross.values()):
        assert cut.paid == gross and cut.deficit == 0
    else:
        assert cut.deficit == sum(-v for v in gross.values() if v < 0)
        assert cut.factor == Fraction(total, total + cut.deficit)


# ---------------------------------------------------------------- through the services

LEGS = ["AAPL", "NVDA", "META", "ORCL"]
START = {"AAPL": 100, "NVDA": 50, "META": 80, "ORCL": 20}
U = 10**6

trades = st.tuples(
    st.just("trade"),
    st.sampled_from(["alice", "bob", "mm"]),
    st.sampled_from(["mm", "mm2"]),
    st.permutations(LEGS).map(lambda legs: legs[:2]),
    st.sampled_from([3, 10, 25, 45, 70]),  # units given
    st.sampled_from(["0.05", "0.2", "0.5", "1", "1.2", "2", "5"]),  # the maker's rate
)
jumps = st.tuples(
    st.just("tick"),
    st.dictionaries(st.sampled_from(LEGS), st.sampled_from(["0.1", "0.5", "0.9", "1.1", "1.6", "3", "8"]), min_size=1),
)

# A trade that may go short, then its give leg jumping up: what liquidates.
squeezes = trades.flatmap(lambda t: st.sampled_from(["1.6", "3", "8"]).map(lambda f: [t, ("tick", {t[3][0]: f})]))


def write_ticks(session_id: str, prices: dict[str, int]) -> None:
    for leg, price in prices.items():
        Tick.objects.create(session_id=session_id, symbol=leg, at=clock.now(), price=price, source="test")


def state(session_id: str) -> tuple[int, dict]:
    return Event.objects.count(), projections.holdings_by_user(session_id)


def attempt(users, step) -> str:
    """An RFQ, a quote and its accept; each refusal checked to have written nothing. Returns the outcome."""
    _, taker, maker, (give, get), units, rate = step
    if taker == maker:
        return "same"
    before = state("demo")
    try:
        rfq = services.request_rfq(users[taker], "demo", give, get, str(units))
    except DomainError as exc:
        assert state("demo") == before, f"a refused RFQ wrote something ({exc.code})"
        return exc.code
    before = state("demo")
    try:
        quote = services.provide_quote(users[maker], rfq.id, rate)
    except DomainError as exc:
        assert state("demo") == before, f"a refused quote wrote something ({exc.code})"
        services.cancel_rfq(users[taker], rfq.id)
        return exc.code
    before = state("demo")
    try:
        services.accept_quote(users[taker], quote.id)
    except DomainError as exc:
        assert state("demo") == before, f"a refused accept wrote something ({exc.code})"
        services.cancel_rfq(users[taker], rfq.id)
        return exc.code
    return "traded"


def run_path(users, short_limit: str, band: str, initial: str, steps, final) -> tuple[list[str], list[str], str]:
    """A shorting session through the services: the steps (trades; ticks, each followed by the scheduler's
    liquidation), then the settlement at the last prices times `final`, checked whole. Returns the
    outcomes of the trades, the log's event types and the settlement's deficit."""
    create_demo(users, short_limit=short_limit, margin_band=band, initial_margin=initial)
    margin = rules.MarginSettings(short_limit, band, initial)
    prices = {leg: price * U for leg, price in START.items()}
    write_ticks("demo", prices)
    outcomes = []
    for step in steps:
        if step[0] == "trade":
            outcomes.append(attempt(users, step))
            continue
        for leg, factor in step[1].items():
            prices[leg] = max(1, int(prices[leg] * Fraction(factor)))
        write_ticks("demo", {leg: prices[leg] for leg in step[1]})
        services.liquidate_due_sessions()
        latest = [prices[leg] for leg in LEGS]
        under = {u: rules.assess(row, latest, margin).w for u, row in projections.holdings_by_user("demo").items()}
        assert all(w >= 0 for w in under.values()), f"after liquidation nobody is under W 0: {under}"
    fixing = [max(1, int(prices[leg] * Fraction(final[leg]))) for leg in LEGS]
    services.settle_session(
        users["org"], "demo", prices={leg: str(Decimal(fixing[k]) / U) for k, leg in enumerate(LEGS)}
    )
    settled = Settlement.objects.get(session_id="demo")
    assert [settled.prices[leg] for leg in LEGS] == fixing
    amounts = [Decimal(p.amount) for p in Payout.objects.filter(session_id="demo")]
    assert all(a >= 0 for a in amounts), "no payout below zero"
    expected = Decimal(domain.money_str(domain.payout([100 * U, 60 * U, 80 * U, 120 * U], fixing)))
    assert sum(amounts) == expected == Decimal(settled.total), "the payouts sum to q.S exactly"
    assert audit.verify_session("demo").problems == []
    assert projections.diff(projections.snapshot("demo"), projections.rebuild("demo")) == [], "replay rebuilds it"
    return outcomes, list(Event.objects.filter(stream="session-demo").values_list("type", flat=True)), settled.deficit


@pytest.mark.django_db
@THROUGH_SERVICES
@given(
    short_limit=st.sampled_from(["0.2", "0.5"]),
    band=st.sampled_from(["0.1", "0.15", "0.3"]),
    initial=st.sampled_from(["0", "0.05"]),
    steps=st.lists(
        st.one_of(trades.map(lambda t: [t]), squeezes, jumps.map(lambda j: [j])), min_size=2, max_size=8
    ).map(lambda runs: [step for run in runs for step in run]),
    final=st.fixed_dictionaries({leg: st.sampled_from(["0.01", "0.3", "1", "2.5", "10"]) for leg in LEGS}),
)
def test_random_trades_and_price_paths_never_pay_below_zero(users, short_limit, band, initial, steps, final):
    with transaction.atomic():
        outcomes, types, deficit = run_path(users, short_limit, band, initial, steps, final)
        event(f"liquidations: {types.count('PositionLiquidated')}, deleveragings: {types.count('AutoDeleveraged')}")
        event(f"haircut: {bool(deficit)}")
        for outcome in outcomes:
            event(f"outcome: {outcome}")
        transaction.set_rollback(True)


# alice goes 20 AAPL short (the limit) for ORCL, mm 24 ORCL short.
SHORT = ("trade", "alice", "mm", ("AAPL", "ORCL"), 45, "1.2")
STILL = {leg: "1" for leg in LEGS}


@pytest.mark.django_db
def test_the_path_liquidates_when_the_short_leg_triples(users):
    outcomes, types, _ = run_path(users, "0.2", "0.15", "0.05", [SHORT, ("tick", {"AAPL": "3"})], STILL)
    assert outcomes == ["traded"]
    assert types.count("PositionLiquidated") == types.count("AutoDeleveraged") == 1


@pytest.mark.django_db
def test_the_path_is_haircut_when_the_fixing_lies_far_outside_the_box(users):
    outcomes, types, deficit = run_path(users, "0.2", "0.15", "0.05", [SHORT], STILL | {"AAPL": "10", "ORCL": "0.01"})
    assert outcomes == ["traded"] and "PositionLiquidated" not in types
    assert Decimal(deficit) > 0


# ---------------------------------------------------------------- the command's price read


T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
ticks_in = st.lists(st.tuples(st.sampled_from([*LEGS, "MSFT"]), st.integers(0, 5), st.integers(1, 10**9)), max_size=14)


@pytest.mark.django_db
@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ticks=ticks_in, at=st.integers(0, 6))
def test_the_commands_one_statement_reads_the_prices_the_selector_reads(users, ticks, at):
    """selectors.prices.prices_at (one statement, what the commands read) == the ORM's newest_ticks (the
    oracle's resume reads it): each leg's newest tick at or before the instant, later id first among ticks
    of the same instant; None without."""
    from markets.selectors.prices import newest_ticks, prices_at

    with transaction.atomic():
        session = create_demo(users)
        for leg, second, price in ticks:
            when = T0 + dt.timedelta(seconds=second)
            Tick.objects.create(session_id="demo", symbol=leg, at=when, price=price, source="test")
            Tick.objects.create(session_id="other", symbol=leg, at=when, price=price + 1, source="test")
        instant = T0 + dt.timedelta(seconds=at, microseconds=1 if at % 2 else 0)
        newest = newest_ticks("demo", session.legs, instant)
        reference = (
            [newest[leg].price if leg in newest else None for leg in session.legs],
            {leg: t.tick_id for leg, t in newest.items()},
        )
        assert prices_at(session, instant) == reference
        transaction.set_rollback(True)


def test_the_haircut_breaks_ties_by_the_lower_user_id_in_number_order():
    """Users 9 and 10 with equal gross payouts and one base unit left over: 9 gets it (not "10" < "9")."""
    from markets.domain.liquidation import haircut

    cut = haircut({9: 5, 10: 5, 11: -1}, 9)
    assert cut.paid == {9: 5, 10: 4, 11: 0}
