"""Every market command through the services: the happy paths a user walks, and a table of every way a
command can be refused. A refusal must say what went wrong (class, code, status, a sentence) and
write nothing at all: the ledger and the projection are exactly as before."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated, http_status
from markets.models import RFQ, Participant, Payout, Quote, Session, Settlement, Trade

T0 = dt.datetime(2030, 1, 2, 9, 30, tzinfo=dt.UTC)
PRICES = {"AAPL": "190.123456", "NVDA": "120.5", "META": "500.333333", "ORCL": "110.000001"}


def units(text: str) -> int:
    """Base units (10**-6) of a quantity written as text, computed without the code under test."""
    value = Decimal(text) * 10**6
    assert value == value.to_integral_value()
    return int(value)


def holdings(sid: str) -> dict[str, list[Decimal]]:
    return {u: [Decimal(x) / 10**6 for x in row] for u, row in projections.holdings_matrix(sid).items()}


def world() -> tuple[int, dict[str, Any]]:
    """Everything a refused command must leave untouched: the ledger size and every session's projection."""
    return Event.objects.count(), {
        sid: projections.snapshot(sid) for sid in Session.objects.values_list("id", flat=True)
    }


def assert_refused(act: Callable[[], Any], exc: type[DomainError], code: str, status: int, text: str) -> DomainError:
    """`act` is refused with exactly this class, code and status, says `text` in words, and writes nothing."""
    before = world()
    with pytest.raises(DomainError) as info:
        act()
    err = info.value
    assert type(err) is exc, f"{type(err).__name__}: {err.message}"
    assert (err.code, http_status(err)) == (code, status), err.message
    assert text in err.message
    assert err.message == str(err)
    assert "Traceback" not in err.message and "DoesNotExist" not in err.message
    assert world() == before, "a refused command wrote to the ledger or the projection"
    return err


def event_types(sid: str) -> list[str]:
    return list(Event.objects.filter(stream=f"session-{sid}").order_by("version").values_list("type", flat=True))


@pytest.fixture
def market(users):
    """demo open (alice, bob trade; mm, mm2 make), `pre` created but not open; alice's RFQ 10 AAPL -> NVDA
    with mm's live quote at 0.62 for 60 s. The clock is frozen at T0."""
    clock.set_time(T0)
    demo = create_demo(users)
    pre = create_demo(users, "pre", open_it=False)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62", 60)
    return SimpleNamespace(u=users, demo=demo, pre=pre, rfq=rfq, quote=quote)


# ---------------------------------------------------------------- the seed scenario


def test_seed_scenario_trade_and_settlement_are_exact(market):
    u = market.u
    assert holdings("demo") == {
        "alice": [25, 15, 20, 30],
        "bob": [25, 15, 20, 30],
        "mm": [25, 15, 20, 30],
        "mm2": [25, 15, 20, 30],
    }
    assert market.rfq.status == RFQ.Status.OPEN
    assert market.quote.status == Quote.Status.LIVE
    assert market.quote.expires_at == T0 + dt.timedelta(seconds=60)

    trade = services.accept_quote(u["alice"], market.quote.id)

    assert (trade.give_leg, trade.get_leg, trade.give_qty, trade.get_qty) == ("AAPL", "NVDA", units("10"), units("6.2"))
    assert (trade.taker.username, trade.maker.username) == ("alice", "mm")
    got = holdings("demo")
    assert got["alice"] == [15, Decimal("21.2"), 20, 30]
    assert got["mm"] == [35, Decimal("8.8"), 20, 30]
    assert got["bob"] == got["mm2"] == [25, 15, 20, 30]
    assert RFQ.objects.get(id=market.rfq.id).status == RFQ.Status.FILLED
    assert Quote.objects.get(id=market.quote.id).status == Quote.Status.FILLED

    session = services.settle_session(u["org"], "demo", prices=PRICES)

    assert session.status == Session.Status.SETTLED
    q = [Decimal(100), Decimal(60), Decimal(80), Decimal(120)]
    s = [Decimal(PRICES[leg]) for leg in ("AAPL", "NVDA", "META", "ORCL")]
    expected_total = sum(a * b for a, b in zip(q, s, strict=True))
    paid = {p.participant.username: Decimal(p.amount) for p in Payout.objects.filter(session_id="demo")}
    assert set(paid) == {"alice", "bob", "mm", "mm2"}
    for user, row in got.items():
        assert paid[user] == sum(x * price for x, price in zip(row, s, strict=True)), user
    assert sum(paid.values()) == expected_total
    settlement = Settlement.objects.get(session_id="demo")
    assert Decimal(settlement.total) == Decimal(settlement.expected) == expected_total
    assert settlement.fixing["source"] == "manual"
    assert settlement.prices == {leg: units(v) for leg, v in PRICES.items()}
    assert event_types("demo") == [
        "SessionCreated",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantJoined",
        "InitialAllocationAssigned",
        "SessionOpened",
        "RFQRequested",
        "QuoteProvided",
        "TradeExecuted",
        "SessionSettled",
    ]
    assert audit.verify_session("demo").ok, audit.verify_session("demo").problems


def test_rounding_favours_the_maker_by_less_than_one_base_unit(market):
    u = market.u
    before = projections.holdings_matrix("demo")
    rfq = services.request_rfq(u["bob"], "demo", "ORCL", "META", "0.000007")
    quote = services.provide_quote(u["mm2"], rfq.id, "0.33333333")
    trade = services.accept_quote(u["bob"], quote.id)
    # 7 base units x 0.33333333 = 2.33333331 base units: bob gets floor = 2, mm2 keeps the 0.33.
    assert (trade.give_qty, trade.get_qty) == (7, 2)
    after = projections.holdings_matrix("demo")
    assert after["bob"][3] == before["bob"][3] - 7 and after["bob"][2] == before["bob"][2] + 2
    assert after["mm2"][3] == before["mm2"][3] + 7 and after["mm2"][2] == before["mm2"][2] - 2
    # Too small to deliver a single base unit: refused when quoted.
    tiny = services.request_rfq(u["bob"], "demo", "ORCL", "META", "0.000003")
    assert_refused(
        lambda: services.provide_quote(u["mm2"], tiny.id, "0.33333333"),
        DomainError,
        "trade_too_small",
        422,
        "would deliver 0 units",
    )


def test_creating_a_session_records_who_and_what(users):
    session = services.create_session(
        users["org"], session_id="s1", legs=["aapl", " nvda ", "GOLD  3m"], q=["1.5", 2, 3], title="Friday"
    )
    # Names keep their case; blanks around and inside are tidied.
    assert session.legs == ["aapl", "nvda", "GOLD 3m"]
    assert session.q == [1_500_000, 2_000_000, 3_000_000]
    assert session.status == Session.Status.CREATED
    org = Participant.objects.get(session=session)
    assert (org.username, org.role) == ("org", Participant.Role.ORGANISER)
    created = Event.objects.get(stream="session-s1", version=1)
    assert created.type == "SessionCreated"
    # People are named by their immutable id; the name at the time is kept for display only.
    assert created.data["created_by_id"] == users["org"].pk and "created_by" not in created.data
    joined = Event.objects.get(stream="session-s1", version=2).data
    assert joined == {"user_id": users["org"].pk, "username": "org", "name": "org", "role": "organiser"}
    assert created.data["q"] == [1_500_000, 2_000_000, 3_000_000]


def test_organiser_can_add_a_user_by_name_before_opening(users):
    create_demo(users, "s2", open_it=False)
    joined = services.join_session(users["org"], "s2", "maker", username="eve")
    assert (joined.username, joined.role) == ("eve", Participant.Role.MAKER)
    services.open_session(users["org"], "s2")
    # Five holders now: eve got a pro-rata share.
    assert projections.holdings_matrix("s2")["eve"] == [20_000_000, 12_000_000, 16_000_000, 24_000_000]


# ---------------------------------------------------------------- allocation


def test_pro_rata_remainders_rotate_and_sum_exactly(users):
    # 4 holders (alice, bob, mm, mm2 in name order); remainders 3, 1, 0 and 2 base units.
    create_demo(users, "rr", q=["0.000003", "0.000005", "1", "0.000002"])
    matrix = projections.holdings_matrix("rr")
    assert matrix == {
        "alice": [1, 1, 250_000, 1],
        "bob": [1, 2, 250_000, 0],
        "mm": [1, 1, 250_000, 0],
        "mm2": [0, 1, 250_000, 1],
    }
    for k, total in enumerate([3, 5, 1_000_000, 2]):
        assert sum(row[k] for row in matrix.values()) == total
    assert Event.objects.get(stream="session-rr", type="InitialAllocationAssigned").data["mode"] == "pro_rata"


def test_custom_allocation_is_used_as_given(users):
    create_demo(users, "cu", open_it=False, allocation_mode=Session.AllocationMode.CUSTOM)
    assert_refused(
        lambda: services.open_session(users["org"], "cu"),
        DomainError,
        "invalid_allocation",
        422,
        "needs a custom allocation matrix",
    )
    services.open_session(
        users["org"],
        "cu",
        allocation={"alice": ["100", 0, 0, "0.5"], "mm": [0, "60", "80", "119.5"]},
    )
    assert projections.holdings_matrix("cu") == {
        "alice": [100_000_000, 0, 0, 500_000],
        "bob": [0, 0, 0, 0],
        "mm": [0, 60_000_000, 80_000_000, 119_500_000],
        "mm2": [0, 0, 0, 0],
    }
    assert Session.objects.get(id="cu").status == Session.Status.OPEN
    # bob holds nothing, so he cannot ask to give anything.
    assert_refused(
        lambda: services.request_rfq(users["bob"], "cu", "AAPL", "NVDA", "1"),
        DomainError,
        "insufficient_inventory",
        409,
        "you hold 0.000000 AAPL, not 1.000000",
    )


# ---------------------------------------------------------------- RFQ and quote lifecycle


def test_cancel_rfq_lapses_its_quotes(market):
    u = market.u
    second = services.provide_quote(u["mm2"], market.rfq.id, "0.6")
    rfq = services.cancel_rfq(u["alice"], market.rfq.id)
    assert rfq.status == RFQ.Status.CANCELLED
    assert rfq.closed_at == T0
    assert set(Quote.objects.filter(rfq=rfq).values_list("status", flat=True)) == {Quote.Status.LAPSED}
    assert_refused(
        lambda: services.accept_quote(u["alice"], second.id), Conflict, "rfq_closed", 409, "already cancelled"
    )
    assert holdings("demo")["alice"] == [25, 15, 20, 30]


def test_filling_an_rfq_lapses_the_other_quotes(market):
    u = market.u
    other = services.provide_quote(u["mm2"], market.rfq.id, "0.7")
    services.accept_quote(u["alice"], other.id)
    assert Quote.objects.get(id=other.id).status == Quote.Status.FILLED
    assert Quote.objects.get(id=market.quote.id).status == Quote.Status.LAPSED
    assert_refused(
        lambda: services.withdraw_quote(u["mm"], market.quote.id), Conflict, "quote_not_live", 409, "is lapsed"
    )
    assert holdings("demo")["alice"] == [15, 22, 20, 30]
    assert holdings("demo")["mm2"] == [35, 8, 20, 30]


def test_withdrawn_quote_cannot_be_accepted_but_another_can(market):
    u = market.u
    services.withdraw_quote(u["mm"], market.quote.id)
    assert Quote.objects.get(id=market.quote.id).status == Quote.Status.WITHDRAWN
    assert RFQ.objects.get(id=market.rfq.id).status == RFQ.Status.OPEN
    fresh = services.provide_quote(u["mm"], market.rfq.id, "0.61")
    trade = services.accept_quote(u["alice"], fresh.id)
    assert trade.get_qty == units("6.1")


def test_quote_expires_at_its_ttl_on_the_frozen_clock(market):
    u = market.u
    clock.advance(59.999999)
    rfq2 = services.request_rfq(u["bob"], "demo", "META", "ORCL", "1")
    late = services.provide_quote(u["mm"], rfq2.id, "1.5", 1)
    assert late.expires_at == T0 + dt.timedelta(seconds=60.999999)
    services.accept_quote(u["alice"], market.quote.id)  # 1 us before expiry: still good
    clock.advance(1)
    assert_refused(
        lambda: services.accept_quote(u["bob"], late.id), Conflict, "quote_expired", 409, "expired at 09:31:00"
    )


def test_a_maker_may_also_request(market):
    u = market.u
    rfq = services.request_rfq(u["mm"], "demo", "META", "AAPL", "2")
    quote = services.provide_quote(u["mm2"], rfq.id, "1")
    services.accept_quote(u["mm"], quote.id)
    assert holdings("demo")["mm"] == [27, 15, 18, 30]
    assert holdings("demo")["mm2"] == [23, 15, 22, 30]


def test_trades_conserve_and_replay_after_a_busy_session(market):
    u = market.u
    services.accept_quote(u["alice"], market.quote.id)
    for taker, give, get, qty, maker, rate in [
        ("bob", "ORCL", "META", "7.5", "mm2", "0.98765432"),
        ("alice", "NVDA", "ORCL", "21.2", "mm", "0.41666667"),
        ("mm", "AAPL", "META", "0.000001", "mm2", "3"),
    ]:
        rfq = services.request_rfq(u[taker], "demo", give, get, qty)
        quote = services.provide_quote(u[maker], rfq.id, rate)
        services.accept_quote(u[taker], quote.id)
    matrix = projections.holdings_matrix("demo")
    for k, total in enumerate([100, 60, 80, 120]):
        assert sum(row[k] for row in matrix.values()) == total * 10**6
    assert all(x >= 0 for row in matrix.values() for x in row)
    assert matrix["alice"][1] == 0  # gave all 21.2 NVDA
    assert Trade.objects.filter(session_id="demo").count() == 4
    assert projections.diff(projections.snapshot("demo"), projections.rebuild("demo")) == []


# ---------------------------------------------------------------- refusals


@dataclass
class Case:
    id: str
    act: Callable[[SimpleNamespace], Any]
    exc: type[DomainError]
    code: str
    status: int
    text: str
    prepare: Callable[[SimpleNamespace], Any] | None = None
    marks: list = field(default_factory=list)  # e.g. an xfail naming a known bug


def _settle(c):
    return services.settle_session(c.u["org"], "demo", prices=PRICES)


def _rfq(c, qty, give="AAPL", get="NVDA", who="alice", sid="demo"):
    return services.request_rfq(c.u[who], sid, give, get, qty)


def _quote(c, rate, ttl=60, who="mm"):
    return services.provide_quote(c.u[who], c.rfq.id, rate, ttl)


def _two_rfqs_one_filled(c):
    r1 = _rfq(c, "15")
    r2 = _rfq(c, "10")
    services.accept_quote(c.u["alice"], services.provide_quote(c.u["mm"], r1.id, "0.5").id)
    c.pending = services.provide_quote(c.u["mm2"], r2.id, "0.5")


def _drain_mm_nvda(c):
    # bob takes 10 NVDA from mm first; mm keeps 5 NVDA, less than the 6.2 alice's quote needs.
    r = _rfq(c, "10", "META", "NVDA", who="bob")
    services.accept_quote(c.u["bob"], services.provide_quote(c.u["mm"], r.id, "1").id)


def _timed(c, *, at_t2: bool, later: float = 0):
    """`tm`: a timed session (t2 = T0 + 10 min, with a fraction of a second), alice's RFQ and mm's quote on it;
    the clock then moves to t2 (plus `later` seconds), or stays before it."""
    t2 = T0 + dt.timedelta(minutes=10, microseconds=500_000)
    create_demo(c.u, "tm", end_mode="timed", t2=t2)
    c.tm_rfq = _rfq(c, "10", sid="tm")
    c.tm_quote = services.provide_quote(c.u["mm"], c.tm_rfq.id, "0.62", 3600)
    if at_t2:
        clock.set_time(t2 + dt.timedelta(seconds=later))


def _timed_unopened(c):
    create_demo(c.u, "tm2", open_it=False, end_mode="timed", t2=T0 + dt.timedelta(minutes=10))
    clock.set_time(T0 + dt.timedelta(minutes=10))


TOO_BIG = "1000000000.000001"
REFUSALS = [
    # unknown things
    Case("unknown-session", lambda c: _rfq(c, "1", sid="nope"), NotFound, "session_not_found", 404, "Unknown session"),
    Case("unknown-give-leg", lambda c: _rfq(c, "1", "TSLA"), DomainError, "unknown_leg", 422, "Unknown leg 'TSLA'"),
    Case("unknown-get-leg", lambda c: _rfq(c, "1", "AAPL", "GOOG"), DomainError, "unknown_leg", 422, "Unknown leg"),
    Case("same-leg", lambda c: _rfq(c, "1", "NVDA", "nvda"), DomainError, "same_leg", 422, "must differ"),
    Case("unknown-rfq", lambda c: services.provide_quote(c.u["mm"], 999999, "1"), NotFound, "rfq_not_found", 404, "Unknown RFQ"),
    Case("rfq-id-text", lambda c: services.cancel_rfq(c.u["alice"], "x'1"), NotFound, "rfq_not_found", 404, "Unknown RFQ"),
    Case("unknown-quote", lambda c: services.accept_quote(c.u["alice"], 999999), NotFound, "quote_not_found", 404, "Unknown quote"),
    Case("quote-id-text", lambda c: services.withdraw_quote(c.u["mm"], "abc"), NotFound, "quote_not_found", 404, "Unknown quote"),
    # quantities
    Case("qty-zero", lambda c: _rfq(c, "0"), DomainError, "invalid_number", 422, "greater than zero"),
    Case("qty-zero-int", lambda c: _rfq(c, 0), DomainError, "invalid_number", 422, "greater than zero"),
    Case("qty-zero-decimals", lambda c: _rfq(c, "0.000000"), DomainError, "invalid_number", 422, "greater than zero"),
    Case("qty-negative", lambda c: _rfq(c, "-1"), DomainError, "invalid_number", 422, "must not be negative"),
    Case("qty-negative-float", lambda c: _rfq(c, -0.5), DomainError, "invalid_number", 422, "must not be negative"),
    Case("qty-nan", lambda c: _rfq(c, "NaN"), DomainError, "invalid_number", 422, "finite"),
    Case("qty-snan", lambda c: _rfq(c, "sNaN"), DomainError, "invalid_number", 422, "finite"),
    Case("qty-nan-float", lambda c: _rfq(c, float("nan")), DomainError, "invalid_number", 422, "finite"),
    Case("qty-inf", lambda c: _rfq(c, "Infinity"), DomainError, "invalid_number", 422, "finite"),
    Case("qty-inf-float", lambda c: _rfq(c, float("inf")), DomainError, "invalid_number", 422, "finite"),
    Case("qty-minus-inf", lambda c: _rfq(c, "-inf"), DomainError, "invalid_number", 422, "finite"),
    Case("qty-huge", lambda c: _rfq(c, TOO_BIG), DomainError, "invalid_number", 422, "too large"),
    Case("qty-huge-exponent", lambda c: _rfq(c, "1e400"), DomainError, "invalid_number", 422, "too large"),
    Case("qty-huge-int", lambda c: _rfq(c, 10**30), DomainError, "invalid_number", 422, "too large"),
    Case("qty-text", lambda c: _rfq(c, "ten"), DomainError, "invalid_number", 422, "must be a number, not 'ten'"),
    Case("qty-comma", lambda c: _rfq(c, "1,5"), DomainError, "invalid_number", 422, "must be a number"),
    Case("qty-empty", lambda c: _rfq(c, "  "), DomainError, "invalid_number", 422, "is required"),
    Case("qty-none", lambda c: _rfq(c, None), DomainError, "invalid_number", 422, "must be a number"),
    Case("qty-bool", lambda c: _rfq(c, True), DomainError, "invalid_number", 422, "must be a number"),
    Case("qty-list", lambda c: _rfq(c, [1]), DomainError, "invalid_number", 422, "must be a number"),
    Case("qty-too-long", lambda c: _rfq(c, "1" * 65), DomainError, "invalid_number", 422, "too long"),
    Case("qty-7-decimals", lambda c: _rfq(c, "0.0000001"), DomainError, "invalid_number", 422, "more than 6 decimal places"),
    Case("qty-tiny-exponent", lambda c: _rfq(c, "1e-7"), DomainError, "invalid_number", 422, "more than 6 decimal places"),
    Case("qty-vanishing-exponent", lambda c: _rfq(c, "1e-999999999"), DomainError, "invalid_number", 422, "decimal places"),
    Case("qty-int-over-4300-digits", lambda c: _rfq(c, 10**5000), DomainError, "invalid_number", 422, "too large"),
    Case("qty-negative-huge-int", lambda c: _rfq(c, -(10**5000)), DomainError, "invalid_number", 422, "must not be negative"),
    # rates and lifetimes
    Case("rate-zero", lambda c: _quote(c, "0"), DomainError, "invalid_number", 422, "Rate must be greater than zero"),
    Case("rate-negative", lambda c: _quote(c, "-0.62"), DomainError, "invalid_number", 422, "must not be negative"),
    Case("rate-nan", lambda c: _quote(c, "nan"), DomainError, "invalid_number", 422, "finite"),
    Case("rate-inf", lambda c: _quote(c, float("inf")), DomainError, "invalid_number", 422, "finite"),
    Case("rate-huge", lambda c: _quote(c, "1000001"), DomainError, "invalid_number", 422, "too large"),
    Case("rate-text", lambda c: _quote(c, "cheap"), DomainError, "invalid_number", 422, "Rate must be a number"),
    Case("rate-9-decimals", lambda c: _quote(c, "0.620000001"), DomainError, "invalid_number", 422, "more than 8 decimal"),
    Case("rate-delivers-nothing", lambda c: _quote(c, "0.00000009"), DomainError, "trade_too_small", 422, "0 units"),
    Case("ttl-zero", lambda c: _quote(c, "1", 0), DomainError, "invalid_ttl", 422, "whole number of seconds from 1 to 86,400"),
    Case("ttl-too-long", lambda c: _quote(c, "1", 86401), DomainError, "invalid_ttl", 422, "whole number of seconds from 1 to 86,400"),
    Case("ttl-text", lambda c: _quote(c, "1", "soon"), DomainError, "invalid_ttl", 422, "whole number of seconds from 1 to 86,400, not 'soon'"),
    # who may do what
    Case("anonymous-rfq", lambda c: services.request_rfq(AnonymousUser(), "demo", "AAPL", "NVDA", "1"), Unauthenticated, "unauthenticated", 401, "Sign in"),
    Case("outsider-rfq", lambda c: _rfq(c, "1", who="eve"), Forbidden, "not_a_participant", 403, "You have not joined session demo"),
    Case("organiser-rfq", lambda c: _rfq(c, "1", who="org"), Forbidden, "forbidden", 403, "Only traders and makers"),
    Case("own-rfq-quote", lambda c: services.provide_quote(c.u["mm"], c.own.id, "1"), Forbidden, "own_rfq", 403, "your own RFQ", prepare=lambda c: setattr(c, "own", _rfq(c, "1", who="mm"))),
    Case("trader-quotes", lambda c: _quote(c, "0.6", who="bob"), Forbidden, "not_maker", 403, "Only market makers"),
    Case("taker-quotes-self", lambda c: _quote(c, "0.6", who="alice"), Forbidden, "not_maker", 403, "Only market makers"),
    Case("organiser-quotes", lambda c: _quote(c, "0.6", who="org"), Forbidden, "not_maker", 403, "Only market makers"),
    Case("outsider-quotes", lambda c: _quote(c, "0.6", who="eve"), Forbidden, "not_a_participant", 403, "not joined"),
    Case("other-trader-accepts", lambda c: services.accept_quote(c.u["bob"], c.quote.id), Forbidden, "not_your_rfq", 403, "Only the RFQ's taker"),
    Case("maker-accepts-own-quote", lambda c: services.accept_quote(c.u["mm"], c.quote.id), Forbidden, "not_your_rfq", 403, "Only the RFQ's taker"),
    Case("outsider-accepts", lambda c: services.accept_quote(c.u["eve"], c.quote.id), Forbidden, "not_a_participant", 403, "not joined"),
    Case("other-cancels", lambda c: services.cancel_rfq(c.u["bob"], c.rfq.id), Forbidden, "not_your_rfq", 403, "Only the RFQ's taker"),
    Case("other-maker-withdraws", lambda c: services.withdraw_quote(c.u["mm2"], c.quote.id), Forbidden, "not_your_quote", 403, "Only the maker"),
    Case("taker-withdraws", lambda c: services.withdraw_quote(c.u["alice"], c.quote.id), Forbidden, "not_your_quote", 403, "Only the maker"),
    # quote and RFQ states
    Case("expired-quote", lambda c: services.accept_quote(c.u["alice"], c.quote.id), Conflict, "quote_expired", 409, "expired at 09:31:00", prepare=lambda c: clock.advance(60)),
    Case("withdrawn-quote", lambda c: services.accept_quote(c.u["alice"], c.quote.id), Conflict, "quote_not_live", 409, "is withdrawn", prepare=lambda c: services.withdraw_quote(c.u["mm"], c.quote.id)),
    Case("withdraw-twice", lambda c: services.withdraw_quote(c.u["mm"], c.quote.id), Conflict, "quote_not_live", 409, "nothing to withdraw", prepare=lambda c: services.withdraw_quote(c.u["mm"], c.quote.id)),
    Case("cancel-twice", lambda c: services.cancel_rfq(c.u["alice"], c.rfq.id), Conflict, "rfq_closed", 409, "already cancelled", prepare=lambda c: services.cancel_rfq(c.u["alice"], c.rfq.id)),
    Case("quote-cancelled-rfq", lambda c: _quote(c, "0.6", who="mm2"), Conflict, "rfq_closed", 409, "takes no more quotes", prepare=lambda c: services.cancel_rfq(c.u["alice"], c.rfq.id)),
    Case("accept-filled-twice", lambda c: services.accept_quote(c.u["alice"], c.quote.id), Conflict, "rfq_closed", 409, "already filled", prepare=lambda c: services.accept_quote(c.u["alice"], c.quote.id)),
    Case("quote-filled-rfq", lambda c: _quote(c, "0.6", who="mm2"), Conflict, "rfq_closed", 409, "is filled", prepare=lambda c: services.accept_quote(c.u["alice"], c.quote.id)),
    # inventory
    Case("taker-short-at-request", lambda c: _rfq(c, "25.000001"), DomainError, "insufficient_inventory", 409, "you hold 25.000000 AAPL, not 25.000001"),
    Case("taker-short-at-accept", lambda c: services.accept_quote(c.u["alice"], c.pending.id), DomainError, "insufficient_inventory", 409, "the taker holds 0.000000 AAPL, needs 10.000000", prepare=lambda c: (_two_rfqs_one_filled(c), services.accept_quote(c.u["alice"], c.quote.id))),
    Case("maker-short-at-accept", lambda c: services.accept_quote(c.u["alice"], c.quote.id), DomainError, "insufficient_inventory", 409, "the maker holds 5.000000 NVDA, needs 6.200000", prepare=_drain_mm_nvda),
    # session states
    Case("rfq-before-open", lambda c: _rfq(c, "1", sid="pre"), Conflict, "session_not_open", 409, "not open for trading yet"),
    Case("rfq-after-settle", lambda c: _rfq(c, "1"), Conflict, "session_settled", 409, "is settled", prepare=_settle),
    Case("quote-after-settle", lambda c: _quote(c, "0.6", who="mm2"), Conflict, "session_settled", 409, "no more trading", prepare=_settle),
    Case("accept-after-settle", lambda c: services.accept_quote(c.u["alice"], c.quote.id), Conflict, "session_settled", 409, "is settled", prepare=_settle),
    Case("cancel-after-settle", lambda c: services.cancel_rfq(c.u["alice"], c.rfq.id), Conflict, "session_settled", 409, "is settled", prepare=_settle),
    Case("withdraw-after-settle", lambda c: services.withdraw_quote(c.u["mm"], c.quote.id), Conflict, "session_settled", 409, "is settled", prepare=_settle),
    Case("settle-twice", _settle, Conflict, "already_settled", 409, "already settled", prepare=_settle),
    Case("settle-before-open", lambda c: services.settle_session(c.u["org"], "pre", prices=PRICES), Conflict, "session_not_open", 409, "only an open session settles"),
    Case("join-after-open", lambda c: services.join_session(c.u["eve"], "demo", "trader"), Conflict, "session_not_joinable", 409, "only before the session opens"),
    Case("join-twice", lambda c: services.join_session(c.u["alice"], "pre", "maker"), Conflict, "already_joined", 409, "alice has already joined pre"),
    Case("join-as-organiser", lambda c: services.join_session(c.u["eve"], "pre", "organiser"), DomainError, "invalid_role", 422, "trader or a maker"),
    Case("join-other-user", lambda c: services.join_session(c.u["alice"], "pre", "trader", username="eve"), Forbidden, "not_organiser", 403, "Only the session's organiser"),
    Case("join-unknown-user", lambda c: services.join_session(c.u["org"], "pre", "trader", username="zed"), NotFound, "user_not_found", 404, "No user named 'zed'"),
    Case("open-twice", lambda c: services.open_session(c.u["org"], "demo"), Conflict, "already_open", 409, "already open"),
    Case("open-by-trader", lambda c: services.open_session(c.u["alice"], "pre"), Forbidden, "not_organiser", 403, "Only the session's organiser"),
    Case("open-by-outsider", lambda c: services.open_session(c.u["eve"], "pre"), Forbidden, "not_a_participant", 403, "not joined session pre"),
    Case("settle-by-trader", lambda c: services.settle_session(c.u["alice"], "demo", prices=PRICES), Forbidden, "not_organiser", 403, "Only the session's organiser"),
    Case("settle-by-maker", lambda c: services.settle_session(c.u["mm"], "demo", prices=PRICES), Forbidden, "not_organiser", 403, "Only the session's organiser"),
    # settlement prices
    Case("settle-no-price-no-tick", lambda c: services.settle_session(c.u["org"], "demo"), Conflict, "missing_price", 409, "no price for AAPL, NVDA, META, ORCL"),
    Case("settle-missing-leg", lambda c: services.settle_session(c.u["org"], "demo", prices={"AAPL": 1, "NVDA": 1, "META": 1}), DomainError, "missing_price", 422, "No price given for ORCL"),
    Case("settle-unknown-leg", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"TSLA": 1}), DomainError, "unknown_leg", 422, "Unknown leg TSLA"),
    Case("settle-price-text", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"META": "n/a"}), DomainError, "invalid_number", 422, "Price of META must be a number"),
    Case("settle-price-zero", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"NVDA": "0"}), DomainError, "invalid_number", 422, "Price of NVDA must be greater than zero"),
    Case("settle-price-nan", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"NVDA": "NaN"}), DomainError, "invalid_number", 422, "finite"),
    Case("settle-price-7dp", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"NVDA": "1.0000001"}), DomainError, "invalid_number", 422, "more than 6 decimal places"),
    Case("settle-price-huge", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"NVDA": "10000001"}), DomainError, "invalid_number", 422, "too large"),
    # opening with a custom allocation
    Case("custom-wrong-sum", lambda c: services.open_session(c.u["org"], "pre", allocation={"alice": [100, 60, 80, 119]}), DomainError, "invalid_allocation", 422, "ORCL sums to 119.000000, not q = 120.000000"),
    Case("custom-negative", lambda c: services.open_session(c.u["org"], "pre", allocation={"alice": [101, 60, 80, 120], "bob": [-1, 0, 0, 0]}), DomainError, "invalid_number", 422, "bob's AAPL must not be negative"),
    Case("custom-outsider-row", lambda c: services.open_session(c.u["org"], "pre", allocation={"eve": [100, 60, 80, 120]}), DomainError, "invalid_allocation", 422, "Not a trader or maker of this session: eve"),
    Case("custom-organiser-row", lambda c: services.open_session(c.u["org"], "pre", allocation={"org": [100, 60, 80, 120]}), DomainError, "invalid_allocation", 422, "org"),
    Case("custom-short-row", lambda c: services.open_session(c.u["org"], "pre", allocation={"alice": [100, 60, 80]}), DomainError, "invalid_allocation", 422, "needs 4 quantities"),
    # creating sessions
    Case("create-without-permission", lambda c: services.create_session(c.u["alice"], session_id="x", legs=["A", "B"], q=[1, 1]), Forbidden, "forbidden", 403, "not allowed to create sessions"),
    Case("create-anonymous", lambda c: services.create_session(AnonymousUser(), session_id="x", legs=["A", "B"], q=[1, 1]), Unauthenticated, "unauthenticated", 401, "Sign in"),
    Case("create-existing", lambda c: services.create_session(c.u["org"], session_id="demo", legs=["A", "B"], q=[1, 1]), Conflict, "session_exists", 409, "Session demo already exists"),
    Case("create-bad-id", lambda c: services.create_session(c.u["org"], session_id="a b", legs=["A", "B"], q=[1, 1]), DomainError, "invalid_session_id", 422, "Session id must be"),
    Case("create-one-leg", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A"], q=[1]), DomainError, "invalid_legs", 422, "2 to 32 legs, not 1"),
    Case("create-duplicate-legs", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "a"], q=[1, 1]), DomainError, "invalid_legs", 422, "A repeated"),
    Case("create-bad-leg", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B$"], q=[1, 1]), DomainError, "invalid_legs", 422, "'B$' is not a valid leg name (letters, digits, spaces"),
    Case("create-leg-too-long", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B" * 25], q=[1, 1]), DomainError, "invalid_legs", 422, "up to 24 characters"),
    Case("create-legs-same-ignoring-case", lambda c: services.create_session(c.u["org"], session_id="x", legs=["GOLD 3m", "gold  3M"], q=[1, 1]), DomainError, "invalid_legs", 422, "GOLD 3m repeated"),
    Case("create-existing-other-case", lambda c: services.create_session(c.u["org"], session_id="DEMO", legs=["A", "B"], q=[1, 1]), Conflict, "session_exists", 409, "Session DEMO already exists as demo (ids are unique ignoring case)"),
    Case("create-t2-past", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 1], end_mode="timed", t2=T0 - dt.timedelta(seconds=1)), DomainError, "invalid_time", 422, "t2 (2030-01-02 09:29:59 UTC) is already past"),
    Case("create-t2-now", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 1], end_mode="timed", t2=T0), DomainError, "invalid_time", 422, "is already past"),
    # trading stops at t2 by itself, whatever else runs (nothing runs here: no scheduler recorded it)
    Case("rfq-at-t2", lambda c: _rfq(c, "1", sid="tm"), Conflict, "trading_closed", 409, "Trading in tm closed at t2 (2030-01-02 09:40:00.500000 UTC): it settles at the fixing", prepare=lambda c: _timed(c, at_t2=True)),
    Case("quote-at-t2", lambda c: services.provide_quote(c.u["mm"], c.tm_rfq.id, "0.6"), Conflict, "trading_closed", 409, "closed at t2", prepare=lambda c: _timed(c, at_t2=True)),
    Case("accept-after-t2", lambda c: services.accept_quote(c.u["alice"], c.tm_quote.id), Conflict, "trading_closed", 409, "closed at t2", prepare=lambda c: _timed(c, at_t2=True, later=40)),
    Case("cancel-after-t2", lambda c: services.cancel_rfq(c.u["alice"], c.tm_rfq.id), Conflict, "trading_closed", 409, "closed at t2", prepare=lambda c: _timed(c, at_t2=True, later=1)),
    Case("withdraw-after-t2", lambda c: services.withdraw_quote(c.u["mm"], c.tm_quote.id), Conflict, "trading_closed", 409, "closed at t2", prepare=lambda c: _timed(c, at_t2=True, later=1)),
    Case("open-after-t2", lambda c: services.open_session(c.u["org"], "tm2"), Conflict, "trading_closed", 409, "can no longer open: its t2 (2030-01-02 09:40:00 UTC) has passed", prepare=_timed_unopened),
    Case("settle-timed-before-t2", lambda c: services.settle_session(c.u["org"], "tm"), Conflict, "not_due", 409, "settles by itself at t2 (2030-01-02 09:40:00.500000 UTC)", prepare=lambda c: _timed(c, at_t2=False)),
    # quotes: expiry and inventory
    Case("withdraw-expired", lambda c: services.withdraw_quote(c.u["mm"], c.quote.id), Conflict, "quote_expired", 409, "expired at 09:31:00: nothing to withdraw", prepare=lambda c: clock.advance(60)),
    Case("quote-beyond-inventory", lambda c: _quote(c, "1000"), DomainError, "insufficient_inventory", 409, "you hold 15.000000 NVDA; at rate 1000.00000000 this quote would deliver 10000.000000 NVDA"),
    # identity and strict input
    Case("join-inactive-user", lambda c: services.join_session(c.u["org"], "pre", "trader", username="eve"), Conflict, "user_inactive", 409, "eve is deactivated", prepare=lambda c: type(c.u["eve"]).objects.filter(username="eve").update(is_active=False)),
    Case("qty-underscore", lambda c: _rfq(c, "1_0"), DomainError, "invalid_number", 422, "must be a number, not '1_0' (digits 0-9"),
    Case("qty-arabic-indic", lambda c: _rfq(c, "\u0661\u0660"), DomainError, "invalid_number", 422, "must be a number, not"),
    Case("qty-full-width", lambda c: _rfq(c, "\uff11\uff10"), DomainError, "invalid_number", 422, "must be a number, not"),
    Case("qty-leading-point", lambda c: _rfq(c, ".5"), DomainError, "invalid_number", 422, "must be a number, not '.5'"),
    Case("qty-trailing-point", lambda c: _rfq(c, "5."), DomainError, "invalid_number", 422, "must be a number, not '5.'"),
    Case("qty-plus", lambda c: _rfq(c, "+5"), DomainError, "invalid_number", 422, "must be a number, not '+5'"),
    Case("qty-unicode-space", lambda c: _rfq(c, "\u30005"), DomainError, "invalid_number", 422, "must be a number"),
    Case("rfq-id-spaced", lambda c: services.cancel_rfq(c.u["alice"], f" {c.rfq.id}"), NotFound, "rfq_not_found", 404, "Unknown RFQ"),
    Case("quote-id-decimal", lambda c: services.accept_quote(c.u["alice"], f"{c.quote.id}.0"), NotFound, "quote_not_found", 404, "Unknown quote"),
    Case("quote-id-plus", lambda c: services.accept_quote(c.u["alice"], f"+{c.quote.id}"), NotFound, "quote_not_found", 404, "Unknown quote"),
    Case("quote-id-leading-zero", lambda c: services.withdraw_quote(c.u["mm"], f"0{c.quote.id}"), NotFound, "quote_not_found", 404, "Unknown quote"),
    Case("settle-two-prices-one-leg", lambda c: services.settle_session(c.u["org"], "demo", prices=PRICES | {"aapl": "500"}), DomainError, "duplicate_price", 422, "Two prices given for AAPL ('AAPL' and 'aapl')"),
    Case("create-short-basket", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1]), DomainError, "invalid_basket", 422, "1 entries for 2 legs"),
    Case("create-zero-basket", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 0]), DomainError, "invalid_number", 422, "q for B must be greater than zero"),
    Case("create-t2-before-t1", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 1], start_mode="scheduled", end_mode="timed", t1=T0, t2=T0), DomainError, "invalid_time", 422, "t2 must be after t1"),
    Case("create-naive-time", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 1], start_mode="scheduled", t1=dt.datetime(2030, 1, 1)), DomainError, "invalid_time", 422, "with a timezone"),
    Case("create-bad-rule", lambda c: services.create_session(c.u["org"], session_id="x", legs=["A", "B"], q=[1, 1], fixing_rule={"rule": "vwop"}), DomainError, "invalid_fixing_rule", 422, "Unknown fixing rule 'vwop'"),
]  # fmt: skip


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in REFUSALS])
def test_refusal_writes_nothing(market, case: Case):
    if case.prepare is not None:
        case.prepare(market)
    assert_refused(lambda: case.act(market), case.exc, case.code, case.status, case.text)


def test_refusals_keep_the_ledger_verifiable(market):
    """After a run of refusals the stored projection still replays from the log."""
    for case in REFUSALS[:12]:
        with pytest.raises(DomainError):
            case.act(market)
    assert audit.verify_session("demo").ok
    assert audit.verify_session("pre").ok
