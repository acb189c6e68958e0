"""Corporate actions' pure rule (markets/domain/actions.py): examples worked by hand, and its laws over random
holdings and ratios (hypothesis): no unit created or destroyed (the holdings sum to the new q), each holder
within one base unit of its exact entitlement, cash in lieu exact to the money unit and the pool's value kept."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from markets.domain import DomainError
from markets.domain.actions import cash_merger, dividend, parse_ratio, ratio_text, scale, split

U = 10**6  # one unit of a leg (or one currency unit of a price) in base units


def test_nvda_ten_for_one_moves_every_holding_and_q_exactly_with_no_cash():
    # NVDA 10:1 on 2024-06-10 at 1,208.88 before: 1,208.888 x 1/10 = 120.888 after. 60 NVDA held
    # 15 / 15 / 15 / 15 become 150 each, q 600: nothing fractional, no cash.
    made, price = split(60 * U, {1: 15 * U, 2: 15 * U, 3: 15 * U, 4: 15 * U}, Fraction(10), 1_208_880_000)
    assert price == 120_888_000
    assert made.q == 600 * U and made.x == dict.fromkeys((1, 2, 3, 4), 150 * U)
    assert made.leftover == () and made.cash_total == 0


def test_a_reverse_split_pays_the_fractions_as_cash_in_lieu_and_gives_leftover_units_by_largest_remainder():
    # 1-for-3 of q = 10 base units held 4 / 3 / 3 at a price of 6 (base) before, 18 after. Entitled:
    # 4/3, 1, 1 (sum 10/3); floors 1, 1, 1; q' = floor(10/3) = 3: nothing left over. Holder 1's 1/3 unit
    # is paid as cash at 18: 6 money units; the pool's own 1/3 unit is that cash.
    made, price = split(10, {1: 4, 2: 3, 3: 3}, Fraction(1, 3), 6)
    assert price == 18
    assert (made.q, made.x, made.leftover) == (3, {1: 1, 2: 1, 3: 1}, ())
    assert made.cash == {1: 6, 2: 0, 3: 0}
    # 2-for-3 of q = 5 held 2 / 2 / 1: entitled 4/3, 4/3, 2/3; floors 1, 1, 0; q' = floor(10/3) = 3, one
    # left over: to the largest fraction, holder 3's 2/3. Cash at 9 (6 / (2/3)): holder 1 and 2 are paid
    # 1/3 x 9 = 3 each, holder 3 pays 1/3 x 9 = 3 for the part of its unit it did not own.
    made, price = split(5, {1: 2, 2: 2, 3: 1}, Fraction(2, 3), 6)
    assert (price, made.q, made.x, made.leftover) == (9, 3, {1: 1, 2: 1, 3: 1}, (3,))
    assert made.cash == {1: 3, 2: 3, 3: -3}


def test_a_short_scales_the_same_way_and_its_obligation_rounds_up():
    # A 3:2 split of -3, 4, 2 (q 3): entitled -4.5, 6, 3; floors -5, 6, 3 (the short owes the half unit
    # more, paid back in cash at the price after); q' = 4.5 -> 4: no unit left over.
    made = scale(3, {1: -3, 2: 4, 3: 2}, Fraction(3, 2), 10)
    assert (made.q, made.x) == (4, {1: -5, 2: 6, 3: 3})
    assert made.cash == {1: 5, 2: 0, 3: 0}  # the short is paid 0.5 x 10 for the half unit it over-owes


def test_a_dividend_credits_holders_and_charges_shorts_exactly():
    cash = dividend({1: 10 * U, 2: -2 * U, 3: 2 * U}, 250_000)  # 0.25 per unit
    assert cash == {1: 2_500_000_000_000, 2: -500_000_000_000, 3: 500_000_000_000}
    assert sum(cash.values()) == 10 * U * 250_000  # q . amount
    assert cash_merger({1: 3}, 120 * U) == {1: 360 * U}


@pytest.mark.parametrize(
    ("text", "value"), [("10/1", Fraction(10)), ("1/3", Fraction(1, 3)), ("0.5", Fraction(1, 2)), (2, Fraction(2))]
)
def test_ratios_read_exactly(text, value):
    assert parse_ratio(text) == value and parse_ratio(ratio_text(value)) == value


@pytest.mark.parametrize("text", ["0", "0/5", "5/0", "-2", "1e3", "abc", "2000", "1/2000", "", True, None, 1.5])
def test_bad_ratios_are_refused_with_a_code(text):
    with pytest.raises(DomainError) as info:
        parse_ratio(text)
    assert info.value.code == "invalid_ratio"


holdings = st.lists(st.integers(min_value=-(10**9), max_value=10**12), min_size=1, max_size=12)
ratios = (
    st.fractions(min_value=Fraction(1, 1000), max_value=1000)
    .filter(lambda r: r > 0)
    .map(lambda r: r.limit_denominator(1000))
)
prices = st.integers(min_value=0, max_value=10**13)


@given(holdings, ratios, prices)
def test_no_unit_is_made_or_lost_and_each_holder_is_within_one_unit_of_its_due(xs, ratio, price):
    if sum(xs) < 0:
        xs = [*xs, -sum(xs)]  # a pool holds what its holders hold: q >= 0
    x = {u: v for u, v in enumerate(xs, start=1)}
    q = sum(xs)
    made = scale(q, x, ratio, price)
    assert sum(made.x.values()) == made.q == q * ratio.numerator // ratio.denominator
    for u, v in x.items():
        due = Fraction(v) * ratio
        assert abs(made.x[u] - due) < 1
        # Cash in lieu is the difference at the price, in whole money units: exact to within one.
        assert abs((due - made.x[u]) * price - made.cash[u]) < 1
    # The pool's value is kept to the money unit: units at the price plus cash equal q . r at the price.
    exact = Fraction(q) * ratio * price
    assert 0 <= exact - (made.q * price + made.cash_total) < 1


@given(holdings, ratios)
def test_holders_and_their_order_do_not_change_the_outcome(xs, ratio):
    if sum(xs) < 0:
        xs = [*xs, -sum(xs)]
    x = {u: v for u, v in enumerate(xs, start=1)}
    reversed_x = dict(reversed(list(x.items())))
    assert scale(sum(xs), x, ratio, 7) == scale(sum(xs), reversed_x, ratio, 7)


@given(holdings, holdings, ratios, prices)
def test_two_allocations_of_the_same_q_are_paid_the_same_cash_in_lieu(xs, ys, ratio, price):
    """The holdings and the initial allocation carried through an action: one total, so P&L sums to 0."""
    xs, ys = [abs(v) for v in xs], [abs(v) for v in ys]
    ys[-1] += sum(xs) - sum(ys) if sum(xs) >= sum(ys) else 0
    xs[-1] += sum(ys) - sum(xs) if sum(ys) > sum(xs) else 0
    a = scale(sum(xs), dict(enumerate(xs, 1)), ratio, price)
    b = scale(sum(ys), dict(enumerate(ys, 1)), ratio, price)
    assert sum(xs) == sum(ys) and a.q == b.q and a.cash_total == b.cash_total
