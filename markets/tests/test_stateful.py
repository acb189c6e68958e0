"""Random command sequences through the services, checked against a small model of the market, and
property tests of the pure domain rules.

The state machine keeps its own book (holdings, RFQs, quotes, the clock) and predicts, for every
command, which refusals apply. A command with no predicted refusal must succeed; one with refusals
must fail with one of their codes and write nothing. After every step the holdings equal the model's,
each leg sums to q exactly, nothing is negative, and replaying the log gives the stored projection.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, domain, projections, services
from markets.errors import DomainError
from markets.models import RFQ, Payout, Quote, Settlement

LEGS = ["AAPL", "NVDA", "META", "ORCL"]
Q = [100_000_000, 60_000_000, 80_000_000, 120_000_000]
HOLDERS = ["alice", "bob", "mm", "mm2"]
MAKERS = {"mm", "mm2"}
T0 = dt.datetime(2031, 3, 4, 12, 0, tzinfo=dt.UTC)
_session_numbers = itertools.count(1)

INVALID_QTY = ["0", "-1", "NaN", "inf", "ten", "1e400", "0.0000001", "", "1000000001"]
INVALID_RATE = ["0", "-0.5", "nan", "-inf", "x", "1000001", "0.000000001"]

# (text, base units or None when the text must be refused). Hypothesis favours tiny and edge values,
# so everyday values are drawn from lists as well.
_valid_qty = st.one_of(
    st.sampled_from(["1", "2.5", "5", "10", "12.345678", "0.5", "25", "15", "0.000001"]),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(20), places=6).map(str),
)
quantities = st.one_of(
    _valid_qty.map(lambda t: (t, int(Decimal(t) * 10**6))),
    _valid_qty.map(lambda t: (t, int(Decimal(t) * 10**6))),
    st.sampled_from(INVALID_QTY).map(lambda t: (t, None)),
)
_valid_rate = st.one_of(
    st.sampled_from(["0.62", "1", "1.5", "0.25", "2", "0.98765432", "0.33333333", "0.00000001"]),
    st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(3), places=8).map(str),
)
rates = st.one_of(
    _valid_rate.map(lambda t: (t, int(Decimal(t) * 10**8))),
    _valid_rate.map(lambda t: (t, int(Decimal(t) * 10**8))),
    st.sampled_from(INVALID_RATE).map(lambda t: (t, None)),
)
ttls = st.one_of(st.sampled_from([5, 30, 60, 90]), st.integers(1, 120), st.sampled_from([0, 86401, "soon"]))
people = st.sampled_from([*HOLDERS, *HOLDERS, "org", "eve"])
makers = st.sampled_from(sorted(MAKERS))
legs = st.sampled_from([*LEGS, *LEGS, "TSLA"])
# 0: a random person acts; otherwise the one entitled to (the taker, the maker).
actor_choice = st.integers(0, 3)
MAX_INDEX = 12
indexes = st.integers(0, MAX_INDEX)


class MarketMachine(RuleBasedStateMachine):
    users: dict = {}
    log: list[str] = []  # every outcome of every example, to check the run did real work

    @initialize()
    def start(self):
        self.sid = f"sm{next(_session_numbers)}"
        clock.set_time(T0)
        self.now = T0
        create_demo(self.users, self.sid)
        self.book = {u: list(row) for u, row in domain.pro_rata(Q, HOLDERS).items()}
        self.rfqs: dict[int, dict] = {}
        self.quotes: dict[int, dict] = {}
        self.settled = False
        self.steps = 0

    # ------------------------------------------------------------ running a command against the model

    def run(self, action, refusals: set[str]):
        """Run `action`; it must fail with one of `refusals` (and write nothing), or succeed if empty."""
        self.steps += 1
        before = (Event.objects.count(), projections.snapshot(self.sid))
        try:
            result = action()
        except DomainError as exc:
            assert refusals, f"refused unexpectedly: {exc.code}: {exc.message}"
            assert exc.code in refusals, f"{exc.code} ({exc.message}) not among expected {sorted(refusals)}"
            assert exc.message
            assert (Event.objects.count(), projections.snapshot(self.sid)) == before, "a refusal wrote something"
            self.log.append(exc.code)
            return None
        assert not refusals, f"accepted although it should be refused with one of {sorted(refusals)}"
        self.log.append("ok")
        return result

    def pick(self, table: dict, index: int):
        """Index 0 is the newest id, 1 the one before...; the largest index names an id that does not exist."""
        if index == MAX_INDEX:
            return 10**9 + len(table)
        return sorted(table)[-1 - index % len(table)]

    def role_refusals(self, who: str) -> set[str]:
        return {"not_a_participant"} if who == "eve" else set()

    # ------------------------------------------------------------ rules

    @rule(who=people, give=legs, get=legs, qty=quantities)
    def request(self, who, give, get, qty):
        text, units = qty
        refusals = set()
        if units is None:
            refusals.add("invalid_number")
        refusals |= self.role_refusals(who)
        if give == "TSLA" or get == "TSLA":
            refusals.add("unknown_leg")
        elif give == get:
            refusals.add("same_leg")
        if who == "org":
            refusals.add("forbidden")
        if self.settled:
            refusals.add("session_settled")
        if who in self.book and units is not None and give in LEGS and self.book[who][LEGS.index(give)] < units:
            refusals.add("insufficient_inventory")
        rfq = self.run(lambda: services.request_rfq(self.users[who], self.sid, give, get, text), refusals)
        if rfq is not None:
            assert (rfq.taker.username, rfq.give_leg, rfq.get_leg, rfq.quantity) == (who, give, get, units)
            self.rfqs[rfq.id] = {"taker": who, "give": give, "get": get, "qty": units, "status": "open"}

    @precondition(lambda self: self.rfqs)
    @rule(who=people, maker=makers, choice=actor_choice, index=indexes, rate=rates, ttl=ttls)
    def quote(self, who, maker, choice, index, rate, ttl):
        text, rate_units = rate
        who = maker if choice else who
        rfq_id = self.pick(self.rfqs, index)
        rfq = self.rfqs.get(rfq_id)
        refusals = set()
        if rate_units is None:
            refusals.add("invalid_number")
        if not isinstance(ttl, int) or not 1 <= ttl <= 86400:
            refusals.add("invalid_ttl")
        if rfq is None:
            self.run(lambda: services.provide_quote(self.users[who], rfq_id, text, ttl), refusals | {"rfq_not_found"})
            return
        refusals |= self.role_refusals(who)
        if who not in MAKERS:
            refusals.add("not_maker")
        if rfq["taker"] == who:
            refusals.add("own_rfq")
        if rfq["status"] != "open":
            refusals.add("rfq_closed")
        if rate_units is not None and rfq["qty"] * rate_units // 10**8 == 0:
            refusals.add("trade_too_small")
        elif rate_units is not None and who in MAKERS:
            # A maker may not quote what it could never deliver (checked again at accept).
            if self.book[who][LEGS.index(rfq["get"])] < rfq["qty"] * rate_units // 10**8:
                refusals.add("insufficient_inventory")
        if self.settled:
            refusals.add("session_settled")
        quote = self.run(lambda: services.provide_quote(self.users[who], rfq_id, text, ttl), refusals)
        if quote is not None:
            expires = self.now + dt.timedelta(seconds=ttl)
            assert (quote.rate, quote.expires_at, quote.maker.username) == (rate_units, expires, who)
            self.quotes[quote.id] = {
                "rfq": rfq_id,
                "maker": who,
                "rate": rate_units,
                "expires": expires,
                "status": "live",
            }

    @precondition(lambda self: self.quotes)
    @rule(who=people, choice=actor_choice, index=indexes)
    def accept(self, who, choice, index):
        quote_id = self.pick(self.quotes, index)
        quote = self.quotes.get(quote_id)
        if quote is None:
            self.run(lambda: services.accept_quote(self.users[who], quote_id), {"quote_not_found"})
            return
        refusals = set()
        rfq = self.rfqs[quote["rfq"]]
        who = rfq["taker"] if choice else who
        refusals |= self.role_refusals(who)
        if who != rfq["taker"]:
            refusals.add("not_your_rfq")
        if self.settled:
            refusals.add("session_settled")
        if rfq["status"] != "open":
            refusals.add("rfq_closed")
        if quote["status"] != "live":
            refusals.add("quote_not_live")
        if quote["expires"] <= self.now:
            refusals.add("quote_expired")
        gi, ge = LEGS.index(rfq["give"]), LEGS.index(rfq["get"])
        receive = rfq["qty"] * quote["rate"] // 10**8
        if self.book[rfq["taker"]][gi] < rfq["qty"] or self.book[quote["maker"]][ge] < receive:
            refusals.add("insufficient_inventory")
        trade = self.run(lambda: services.accept_quote(self.users[who], quote_id), refusals)
        if trade is not None:
            self.log.append("trade")
            assert (trade.give_qty, trade.get_qty) == (rfq["qty"], receive)
            taker, maker = self.book[rfq["taker"]], self.book[quote["maker"]]
            taker[gi] -= rfq["qty"]
            maker[gi] += rfq["qty"]
            taker[ge] += receive
            maker[ge] -= receive
            self.close_rfq(quote["rfq"], "filled")
            quote["status"] = "filled"

    @rule(
        taker=st.sampled_from(HOLDERS),
        maker=makers,
        pair=st.permutations(LEGS).map(lambda p: p[:2]),
        qty=_valid_qty.map(lambda t: (t, int(Decimal(t) * 10**6))),
        rate=_valid_rate.map(lambda t: (t, int(Decimal(t) * 10**8))),
        ttl=st.sampled_from([5, 30, 60]),
        wait=st.sampled_from([0, 0, 4, 5, 61]),
    )
    def request_quote_accept(self, taker, maker, pair, qty, rate, ttl, wait):
        """The whole RFQ -> quote -> accept path with well-formed input, each command checked as above."""
        rfqs, quotes = len(self.rfqs), len(self.quotes)
        self.request(taker, pair[0], pair[1], qty)
        if len(self.rfqs) > rfqs:
            self.quote(taker, maker, 1, 0, rate, ttl)
            if len(self.quotes) > quotes:
                self.advance(wait)
                self.accept(taker, 1, 0)

    def close_rfq(self, rfq_id, status):
        self.rfqs[rfq_id]["status"] = status
        for q in self.quotes.values():
            if q["rfq"] == rfq_id and q["status"] == "live":
                q["status"] = "lapsed"

    @precondition(lambda self: self.rfqs)
    @rule(who=people, choice=actor_choice, index=indexes)
    def cancel(self, who, choice, index):
        rfq_id = self.pick(self.rfqs, index)
        rfq = self.rfqs.get(rfq_id)
        if rfq is None:
            self.run(lambda: services.cancel_rfq(self.users[who], rfq_id), {"rfq_not_found"})
            return
        who = rfq["taker"] if choice else who
        refusals = self.role_refusals(who)
        if who != rfq["taker"]:
            refusals.add("not_your_rfq")
        if self.settled:
            refusals.add("session_settled")
        if rfq["status"] != "open":
            refusals.add("rfq_closed")
        if self.run(lambda: services.cancel_rfq(self.users[who], rfq_id), refusals) is not None:
            self.close_rfq(rfq_id, "cancelled")

    @precondition(lambda self: self.quotes)
    @rule(who=people, choice=actor_choice, index=indexes)
    def withdraw(self, who, choice, index):
        quote_id = self.pick(self.quotes, index)
        quote = self.quotes.get(quote_id)
        if quote is None:
            self.run(lambda: services.withdraw_quote(self.users[who], quote_id), {"quote_not_found"})
            return
        who = quote["maker"] if choice else who
        refusals = self.role_refusals(who)
        if who != quote["maker"]:
            refusals.add("not_your_quote")
        if self.settled:
            refusals.add("session_settled")
        if quote["status"] != "live":
            refusals.add("quote_not_live")
        elif quote["expires"] <= self.now:
            refusals.add("quote_expired")
        if self.run(lambda: services.withdraw_quote(self.users[who], quote_id), refusals) is not None:
            quote["status"] = "withdrawn"

    @rule(seconds=st.sampled_from([1, 5, 30, 59, 60, 61, 121]))
    def advance(self, seconds):
        self.now = clock.advance(seconds)

    @precondition(lambda self: self.steps >= 15)
    @rule(
        who=st.sampled_from(["org", "org", "alice", "mm"]),
        prices=st.lists(st.integers(1, 10**13), min_size=4, max_size=4),
    )
    def settle(self, who, prices):
        refusals = set()
        if who != "org":
            refusals.add("not_organiser")
        if self.settled:
            refusals.add("already_settled")
        text = {leg: domain.price_str(p) for leg, p in zip(LEGS, prices, strict=True)}
        session = self.run(lambda: services.settle_session(self.users[who], self.sid, prices=text), refusals)
        if session is not None:
            self.settled = True
            for rfq_id, rfq in self.rfqs.items():  # trading is over: what was open lapses
                if rfq["status"] == "open":
                    self.close_rfq(rfq_id, "lapsed")
            s = [Decimal(text[leg]) for leg in LEGS]
            paid = {p.participant.username: Decimal(p.amount) for p in Payout.objects.filter(session_id=self.sid)}
            for user, row in self.book.items():
                assert paid[user] == sum(Decimal(x) / 10**6 * price for x, price in zip(row, s, strict=True))
            expected = sum(Decimal(x) / 10**6 * price for x, price in zip(Q, s, strict=True))
            assert sum(paid.values()) == expected
            assert Decimal(Settlement.objects.get(session_id=self.sid).total) == expected

    # ------------------------------------------------------------ invariants

    @invariant()
    def holdings_match_the_model_and_are_conserved(self):
        matrix = projections.holdings_matrix(self.sid)
        assert matrix == self.book
        for k, total in enumerate(Q):
            assert sum(row[k] for row in matrix.values()) == total, LEGS[k]
        assert all(x >= 0 for row in matrix.values() for x in row)

    @invariant()
    def rfq_and_quote_states_match_the_model(self):
        stored_rfqs = dict(RFQ.objects.filter(session_id=self.sid).values_list("id", "status"))
        assert stored_rfqs == {i: r["status"] for i, r in self.rfqs.items()}
        stored_quotes = dict(Quote.objects.filter(rfq__session_id=self.sid).values_list("id", "status"))
        assert stored_quotes == {i: q["status"] for i, q in self.quotes.items()}

    @invariant()
    def replay_equals_projection(self):
        assert projections.diff(projections.snapshot(self.sid), projections.rebuild(self.sid)) == []

    def teardown(self):
        if hasattr(self, "sid"):
            report = audit.verify_session(self.sid)
            assert report.ok, report.problems
        clock.set_time(None)


def test_random_command_sequences_keep_the_market_sound(users):
    MarketMachine.users = users
    MarketMachine.log = []
    run_state_machine_as_test(
        MarketMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # The run exercised real trades and real refusals, not only one of them.
    assert MarketMachine.log.count("trade") >= 5, MarketMachine.log
    assert len(set(MarketMachine.log) - {"ok", "trade"}) >= 8, MarketMachine.log


# ---------------------------------------------------------------- the pure rules


@settings(deadline=None)
@given(q=st.lists(st.integers(1, 10**15), min_size=2, max_size=8), n=st.integers(1, 9))
def test_pro_rata_sums_exactly_and_is_fair_to_one_base_unit(q, n):
    holders = [f"h{i}" for i in range(n)]
    result = domain.pro_rata(q, holders)
    assert list(result) == holders
    for k, total in enumerate(q):
        column = [result[h][k] for h in holders]
        assert sum(column) == total
        assert max(column) - min(column) <= 1
        assert min(column) >= 0


def test_pro_rata_without_holders_is_refused():
    with pytest.raises(DomainError) as info:
        domain.pro_rata([1, 2], [])
    assert info.value.code == "no_holders"


@settings(deadline=None)
@given(qty=st.integers(1, 10**15), rate=st.integers(1, domain.MAX_RATE * domain.RATE_SCALE))
def test_a_trade_moves_the_same_units_out_and_in(qty, rate):
    receive = domain.trade_receive(qty, rate)
    # Never more than the exact product, and less by under one base unit.
    assert receive * domain.RATE_SCALE <= qty * rate < (receive + 1) * domain.RATE_SCALE
    taker_row = [qty, 0, 0]
    maker_row = [0, receive, 0]
    if receive == 0:
        with pytest.raises(DomainError):
            domain.plan_trade(["A", "B", "C"], "A", "B", qty, rate, taker_row, maker_row)
        return
    move = domain.plan_trade(["A", "B", "C"], "A", "B", qty, rate, taker_row, maker_row)
    taker, maker = move.deltas(3)
    assert [t + m for t, m in zip(taker, maker, strict=True)] == [0, 0, 0]
    assert taker == [-qty, receive, 0]  # what the taker gets is exactly what the maker gives
    assert maker == [qty, -receive, 0]


@settings(deadline=None)
@given(
    matrix=st.lists(st.lists(st.integers(0, 10**15), min_size=4, max_size=4), min_size=1, max_size=10),
    prices=st.lists(st.integers(1, domain.MAX_PRICE * domain.PRICE_SCALE), min_size=4, max_size=4),
)
def test_payouts_sum_to_q_dot_s(matrix, prices):
    holdings = {f"p{i}": row for i, row in enumerate(matrix)}
    q = [sum(col) for col in zip(*matrix, strict=True)]
    paid = domain.payouts(holdings, prices)
    assert sum(paid.values()) == domain.payout(q, prices)
    domain.check_settlement_sum(paid, q, prices)
    # and the printed amounts add up exactly too (in a context wide enough not to round the sum)
    with localcontext(prec=100):
        assert sum(Decimal(domain.money_str(v)) for v in paid.values()) == Decimal(
            domain.money_str(domain.payout(q, prices))
        )


@settings(deadline=None)
@given(units=st.integers(1, domain.MAX_QTY_UNITS * domain.QTY_SCALE))
def test_parse_fixed_round_trips_with_qty_str(units):
    text = domain.qty_str(units)
    assert domain.parse_qty(text) == units
    assert Decimal(text) == Decimal(units) / domain.QTY_SCALE
    # extra trailing zeros and surrounding spaces mean the same number
    assert domain.parse_qty(f" {text}000 ") == units


@settings(deadline=None)
@given(units=st.integers(1, domain.MAX_RATE * domain.RATE_SCALE))
def test_parse_rate_round_trips_with_rate_str(units):
    assert domain.parse_rate(domain.rate_str(units)) == units


@settings(deadline=None)
@given(text=st.text(max_size=30))
def test_parse_qty_never_crashes_and_never_returns_nonpositive(text):
    try:
        value = domain.parse_qty(text)
    except DomainError as exc:
        assert exc.code == "invalid_number"
        assert exc.message
    else:
        assert 1 <= value <= domain.MAX_QTY_UNITS * domain.QTY_SCALE
