"""The market's pure rules (markets.domain, oracle.units): exact numbers, names, pro rata, trades, payouts,
the invariants and the time rules, with hypothesis where a property says more than examples."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from markets import domain
from markets.domain import DomainError
from oracle import units

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
    # surrounding spaces and tabs mean the same number; zeros beyond the scale are decimals beyond it
    assert domain.parse_qty(f" \t{text} ") == units
    with pytest.raises(DomainError, match="more than 6 decimal places"):
        domain.parse_qty(f"{text}0")


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


@settings(deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_only_ascii_decimal_text_is_a_number(text):
    """Whatever a person types: it is read only if it is ASCII digits with an optional point and exponent."""
    ascii_decimal = units.NUMBER_TEXT.fullmatch(text.strip(" \t")) is not None
    try:
        units.read_decimal(text)
    except units.InvalidNumber:
        return
    assert ascii_decimal, f"{text!r} was read as a number"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("1_0", "must be a number, not '1_0'"),
        ("\u0661\u0660", "must be a number, not"),
        ("\uff11\uff10", "must be a number, not"),
        (".5", "must be a number, not '.5'"),
        ("5.", "must be a number, not '5.'"),
        ("+5", "must be a number, not '+5'"),
        ("-5", "must not be negative"),
        ("NaN", "must be a finite number"),
        ("-Infinity", "must be a finite number"),
        ("", "is required"),
        ("1" * 65, "is too long"),
    ],
)
def test_what_is_not_a_number_says_why(text, reason):
    with pytest.raises(units.InvalidNumber) as info:
        units.read_decimal(text, "Quantity")
    assert info.value.message == f"Quantity {info.value.reason}" and reason in info.value.reason


def test_numbers_are_read_exactly_with_an_exponent_and_blanks_around():
    assert units.read_decimal(" 2.50 ") == Decimal("2.50")
    assert units.read_decimal("1e-3") == Decimal("0.001")
    assert units.read_decimal(0.1) == Decimal("0.1")  # a float by its shortest repr, never its binary value
    assert domain.parse_qty("1E2") == 100_000_000


@pytest.mark.parametrize("value, expected", [(1, 1), ("7", 7), ("123", 123), (2**63 - 1, 2**63 - 1)])
def test_ids_written_one_way_are_ids(value, expected):
    assert domain.parse_id(value) == expected


@pytest.mark.parametrize(
    "value", [" 1", "1 ", "1.0", "+1", "01", "0", -1, 0, "", "x", True, 2**63, str(2**63), None, 1.0]
)
def test_anything_else_names_no_row(value):
    assert domain.parse_id(value) is None


def test_leg_names_keep_case_and_tidy_blanks_and_are_distinct_ignoring_case():
    assert domain.validate_legs(["GOLD 3m", " GOLD   1y ", "EUR/USD", "brent.1"]) == [
        "GOLD 3m",
        "GOLD 1y",
        "EUR/USD",
        "brent.1",
    ]
    for bad in (["A", "A$"], ["A", " "], ["A", "-B"], ["A", "B" * 25], ["A", "\u00e9t\u00e9"]):
        with pytest.raises(DomainError) as info:
            domain.validate_legs(bad)
        assert info.value.code == "invalid_legs"
    with pytest.raises(DomainError, match="GOLD 3m repeated"):
        domain.validate_legs(["GOLD 3m", "gold  3M"])
    legs = ["GOLD 3m", "GOLD 1y"]
    assert domain.leg_index(legs, "gold 1Y") == 1 and domain.leg_index(legs, " GOLD  3M ") == 0
    with pytest.raises(DomainError, match="Unknown leg 'GOLD 5y'"):
        domain.leg_index(legs, "GOLD 5y")


def test_one_value_per_leg():
    legs = ["AAPL", "NVDA"]
    assert domain.leg_map(legs, {"aapl": 1, "NVDA": 2}, "price") == {"AAPL": 1, "NVDA": 2}
    with pytest.raises(DomainError) as info:
        domain.leg_map(legs, {"AAPL": 1, "aapl": 2}, "price")
    assert (info.value.code, info.value.kind) == ("duplicate_price", "invalid")
    with pytest.raises(DomainError, match="Unknown leg TSLA"):
        domain.leg_map(legs, {"TSLA": 1}, "price")


T2 = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)


def test_trading_in_a_timed_session_stops_at_t2_exactly():
    before, at = T2 - dt.timedelta(microseconds=1), T2
    assert domain.session_phase("open", "timed", T2, before) == "open"
    assert domain.session_phase("open", "timed", T2, at) == "closed"
    assert domain.session_phase("open", "manual", T2, at) == "open"  # t2 means nothing to a manual session
    assert domain.session_phase("settled", "timed", T2, at) == "settled"
    assert domain.quote_status("live", T2, before) == "live"
    assert domain.quote_status("live", T2, at) == "expired"
    assert domain.quote_status("filled", T2, at) == "filled"


def test_instants_in_messages_keep_their_fraction():
    assert domain.when(T2) == "2030-01-01 12:00:00 UTC"
    assert domain.when(T2 + dt.timedelta(microseconds=500_000)) == "2030-01-01 12:00:00.500000 UTC"


def test_each_invariant_names_what_broke():
    q = [10, 20]
    for check, args, text in (
        (domain.check_conservation, ({"a": [5, 20], "b": [4, 0]}, q), "Conservation broken on leg #0"),
        (domain.check_non_negative, ({"a": [11, 20], "b": [-1, 0]},), "Negative holding: b would hold -0.000001"),
        (domain.check_zero_sum, ([1, 0], [0, -1]), "not zero-sum on leg #0"),
        (domain.check_settlement_sum, ({"a": 1}, q, [1, 1]), "differs from q.S"),
    ):
        with pytest.raises(domain.InvariantViolation) as info:
            check(*args)
        assert text in info.value.message and info.value.kind == "conflict"
    domain.check_conservation({"a": [10, 20]}, q)
    domain.check_non_negative({"a": [0, 0]})


@given(st.integers(min_value=0, max_value=10**30), st.sampled_from([6, 8, 12]))
def test_exact_text_has_all_its_places_and_never_an_exponent(base, dp):
    """A zero payout is 0.000000000000 (str(Decimal) wrote 0E-12), the smallest rate 0.00000001 (1E-8)."""
    text = units.fmt(base, dp)
    assert "E" not in text and len(text.split(".")[1]) == dp
    assert int(text.replace(".", "")) == base
    assert domain.money_str(0) == "0.000000000000" and domain.rate_str(1) == "0.00000001"


def test_verification_reads_money_written_with_an_exponent_as_the_same_number():
    from markets.audit import _same_money

    assert _same_money("0E-12", 0) and _same_money("5E-12", 5) and _same_money("0.000000000005", 5)
    assert not _same_money("0.000000000004", 5) and not _same_money(None, 0) and not _same_money("x", 0)
