"""The market's rules as pure functions over exact integers. No Django, no I/O, no floats.

Fixed scales (documented in the README):
- quantities of a leg: integers of 10**-6 units (QTY_DP = 6), so 6.2 NVDA is 6_200_000;
- rates (units of the get leg per unit of the give leg): integers of 10**-8 (RATE_DP = 8);
- prices: integers of 10**-6 currency (PRICE_DP = 6);
- money (quantity x price): integers of 10**-12 currency (MONEY_DP = QTY_DP + PRICE_DP).

Rounding: a trade of N units at rate r moves floor(N * r) of the get leg (in base units), from the
maker to the taker. Both sides move the same integers, so rounding can never create or destroy units;
it favours the maker by less than one base unit (10**-6), and a trade that would move 0 is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)

QTY_DP = 6
RATE_DP = 8
PRICE_DP = 6
MONEY_DP = QTY_DP + PRICE_DP
QTY_SCALE = 10**QTY_DP
RATE_SCALE = 10**RATE_DP
PRICE_SCALE = 10**PRICE_DP
MONEY_SCALE = 10**MONEY_DP

# Bounds keep every stored integer inside SQLite's signed 64-bit range with room to spare.
MAX_QTY_UNITS = 10**9
MAX_RATE = 10**6
MAX_PRICE = 10**7
MIN_LEGS, MAX_LEGS = 2, 32
LEG_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,15}$")

# Decimal arithmetic wide enough that scaling never rounds (the default context keeps 28 digits).
# Every inexact step raises instead of rounding quietly (a tiny 1e-999999999 must not become 0).
_EXACT = Context(
    prec=120,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Underflow, Subnormal, Inexact, Rounded, Clamped],
)

ROLES = ("organiser", "trader", "maker")
HOLDER_ROLES = ("trader", "maker")


class DomainError(Exception):
    """A rule was broken; `code` is stable for programs, `message` is for people."""

    code = "invalid"
    status = 422

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvariantViolation(DomainError):
    code = "invariant_violation"
    status = 409


# ---------------------------------------------------------------- parsing and formatting


def parse_fixed(
    value: object,
    *,
    dp: int,
    what: str,
    max_value: int,
    allow_zero: bool = False,
) -> int:
    """Parse a decimal given as text, int or Decimal into base units of 10**-dp, exactly.

    Refuses NaN, infinities, negatives, zero (unless allowed), more than `dp` decimals and values
    above `max_value` units. Floats (from JSON numbers) are read by their shortest repr.
    """
    if isinstance(value, bool) or value is None:
        raise DomainError(f"{what} must be a number", "invalid_number")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if not text:
            raise DomainError(f"{what} is required", "invalid_number")
        if len(text) > 64:
            raise DomainError(f"{what} is too long to be a number", "invalid_number")
    elif isinstance(value, int):
        if value < 0:
            raise DomainError(f"{what} must not be negative", "invalid_number")
        if value > max_value:  # before str(): a huge int would not even convert
            raise DomainError(f"{what} is too large (at most {max_value:,})", "invalid_number")
        text = str(value)
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        raise DomainError(f"{what} must be a number", "invalid_number")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise DomainError(f"{what} must be a number, not {text[:20]!r}", "invalid_number") from None
    if not number.is_finite():
        raise DomainError(f"{what} must be a finite number", "invalid_number")
    if number < 0:
        raise DomainError(f"{what} must not be negative", "invalid_number")
    if number == 0 and not allow_zero:
        raise DomainError(f"{what} must be greater than zero", "invalid_number")
    if number > max_value:
        raise DomainError(f"{what} is too large (at most {max_value:,})", "invalid_number")
    try:
        scaled = number.scaleb(dp, context=_EXACT)
    except DecimalException:
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value(context=_EXACT):
        raise DomainError(f"{what} has more than {dp} decimal places", "invalid_number")
    if scaled == 0 and not allow_zero:
        raise DomainError(f"{what} must be greater than zero", "invalid_number")
    return int(scaled)


def parse_qty(value: object, what: str = "Quantity", allow_zero: bool = False) -> int:
    return parse_fixed(value, dp=QTY_DP, what=what, max_value=MAX_QTY_UNITS, allow_zero=allow_zero)


def parse_rate(value: object, what: str = "Rate") -> int:
    return parse_fixed(value, dp=RATE_DP, what=what, max_value=MAX_RATE)


def parse_price(value: object, what: str = "Price") -> int:
    return parse_fixed(value, dp=PRICE_DP, what=what, max_value=MAX_PRICE)


def to_decimal(base: int, dp: int) -> Decimal:
    """Exact Decimal of a base-unit integer, with exactly `dp` places (whatever its size)."""
    return Decimal(base).scaleb(-dp, context=_EXACT).quantize(Decimal(1).scaleb(-dp), context=_EXACT)


def fmt(base: int, dp: int) -> str:
    return str(to_decimal(base, dp))


def qty_str(base: int) -> str:
    return fmt(base, QTY_DP)


def rate_str(base: int) -> str:
    return fmt(base, RATE_DP)


def price_str(base: int) -> str:
    return fmt(base, PRICE_DP)


def money_str(base: int) -> str:
    return fmt(base, MONEY_DP)


# ---------------------------------------------------------------- sessions


def validate_legs(legs: Sequence[object]) -> list[str]:
    if isinstance(legs, str) or not isinstance(legs, Sequence):
        raise DomainError("Legs must be a list of symbols", "invalid_legs")
    symbols = []
    for leg in legs:
        if not isinstance(leg, str):
            raise DomainError("Each leg must be a symbol such as AAPL", "invalid_legs")
        symbol = leg.strip().upper()
        if not LEG_RE.match(symbol):
            raise DomainError(
                f"{leg[:20]!r} is not a valid leg symbol (letters, digits, . _ -; up to 16)",
                "invalid_legs",
            )
        symbols.append(symbol)
    if not MIN_LEGS <= len(symbols) <= MAX_LEGS:
        raise DomainError(f"A session needs {MIN_LEGS} to {MAX_LEGS} legs, not {len(symbols)}", "invalid_legs")
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        raise DomainError(f"Legs must be distinct: {', '.join(duplicates)} repeated", "invalid_legs")
    return symbols


def validate_basket(q: Sequence[object], legs: Sequence[str]) -> list[int]:
    if isinstance(q, str) or not isinstance(q, Sequence):
        raise DomainError("The basket q must be a list of quantities", "invalid_basket")
    if len(q) != len(legs):
        raise DomainError(f"The basket q has {len(q)} entries for {len(legs)} legs", "invalid_basket")
    return [parse_qty(v, f"q for {leg}") for v, leg in zip(q, legs, strict=True)]


def pro_rata(q: Sequence[int], holders: Sequence[str]) -> dict[str, list[int]]:
    """Split every leg equally between `holders`, exactly.

    Each holder gets floor(q_k / n) base units of leg k; the r = q_k mod n base units left over go
    one each to the holders at positions k, k+1, ..., k+r-1 (mod n) of the given order, so the
    remainders rotate across legs instead of always favouring the first holder.
    """
    n = len(holders)
    if n == 0:
        raise DomainError("Nobody to allocate to: at least one trader or maker must join", "no_holders")
    result = {h: [0] * len(q) for h in holders}
    for k, total in enumerate(q):
        share, remainder = divmod(total, n)
        for i, holder in enumerate(holders):
            result[holder][k] = share + (1 if (i - k) % n < remainder else 0)
    return result


def validate_custom_allocation(
    matrix: Mapping[str, Sequence[object]], q: Sequence[int], legs: Sequence[str], holders: Iterable[str]
) -> dict[str, list[int]]:
    """A custom initial allocation: one row per holder, non-negative, each leg summing to q."""
    holder_set = list(holders)
    if not isinstance(matrix, Mapping):
        raise DomainError("A custom allocation maps each participant to a row of quantities", "invalid_allocation")
    unknown = sorted(set(matrix) - set(holder_set))
    if unknown:
        raise DomainError(f"Not a trader or maker of this session: {', '.join(unknown)}", "invalid_allocation")
    result: dict[str, list[int]] = {}
    for holder in holder_set:
        row = matrix.get(holder, [0] * len(legs))
        if isinstance(row, str) or not isinstance(row, Sequence) or len(row) != len(legs):
            raise DomainError(f"The row for {holder} needs {len(legs)} quantities", "invalid_allocation")
        result[holder] = [parse_qty(v, f"{holder}'s {leg}", allow_zero=True) for v, leg in zip(row, legs, strict=True)]
    for k, leg in enumerate(legs):
        total = sum(row[k] for row in result.values())
        if total != q[k]:
            raise DomainError(
                f"The custom allocation of {leg} sums to {qty_str(total)}, not q = {qty_str(q[k])}",
                "invalid_allocation",
            )
    return result


# ---------------------------------------------------------------- trades


def trade_receive(quantity: int, rate: int) -> int:
    """Base units of the get leg for `quantity` base units of the give leg at `rate` (floor)."""
    return quantity * rate // RATE_SCALE


@dataclass(frozen=True)
class TradeMove:
    """What an accepted quote moves: the taker gives `give_qty` of give_leg and gets `get_qty`."""

    give_leg: int
    get_leg: int
    give_qty: int
    get_qty: int

    def deltas(self, n_legs: int) -> tuple[list[int], list[int]]:
        taker = [0] * n_legs
        maker = [0] * n_legs
        taker[self.give_leg] -= self.give_qty
        taker[self.get_leg] += self.get_qty
        maker[self.give_leg] += self.give_qty
        maker[self.get_leg] -= self.get_qty
        return taker, maker


def plan_trade(
    legs: Sequence[str],
    give_leg: str,
    get_leg: str,
    quantity: int,
    rate: int,
    taker_holding: Sequence[int],
    maker_holding: Sequence[int],
) -> TradeMove:
    """Check a trade against both inventories (no internal shorting) and return what it moves."""
    gi, ge = leg_index(legs, give_leg), leg_index(legs, get_leg)
    if gi == ge:
        raise DomainError("The give leg and the get leg must differ", "same_leg")
    receive = trade_receive(quantity, rate)
    if receive <= 0:
        raise DomainError("This trade is too small: it would deliver 0 units at this rate", "trade_too_small")
    if taker_holding[gi] < quantity:
        raise DomainError(
            f"Insufficient inventory: the taker holds {qty_str(taker_holding[gi])} {give_leg}, "
            f"needs {qty_str(quantity)}",
            "insufficient_inventory",
            409,
        )
    if maker_holding[ge] < receive:
        raise DomainError(
            f"Insufficient inventory: the maker holds {qty_str(maker_holding[ge])} {get_leg}, needs {qty_str(receive)}",
            "insufficient_inventory",
            409,
        )
    return TradeMove(gi, ge, quantity, receive)


def leg_index(legs: Sequence[str], leg: str) -> int:
    symbol = str(leg).strip().upper()
    try:
        return list(legs).index(symbol)
    except ValueError:
        raise DomainError(
            f"Unknown leg {str(leg)[:20]!r}: this session trades {', '.join(legs)}", "unknown_leg"
        ) from None


# ---------------------------------------------------------------- settlement


def payout(holding: Sequence[int], prices: Sequence[int]) -> int:
    """x_i . S in money base units (10**-12), exact."""
    return sum(x * s for x, s in zip(holding, prices, strict=True))


def payouts(holdings: Mapping[str, Sequence[int]], prices: Sequence[int]) -> dict[str, int]:
    return {holder: payout(row, prices) for holder, row in holdings.items()}


# ---------------------------------------------------------------- the four invariants


def check_conservation(holdings: Mapping[str, Sequence[int]], q: Sequence[int], tolerance: int = 0) -> None:
    """1. For each leg k: sum_i x[i][k] == q[k] (within `tolerance` base units; 0 by default)."""
    for k, total in enumerate(q):
        held = sum(row[k] for row in holdings.values())
        if abs(held - total) > tolerance:
            raise InvariantViolation(
                f"Conservation broken on leg #{k}: holdings sum to {qty_str(held)}, q is {qty_str(total)}"
            )


def check_non_negative(holdings: Mapping[str, Sequence[int]]) -> None:
    """2. No internal shorting: every x[i][k] >= 0."""
    for holder, row in holdings.items():
        for k, x in enumerate(row):
            if x < 0:
                raise InvariantViolation(f"Negative holding: {holder} would hold {qty_str(x)} of leg #{k}")


def check_leg_totals(totals: Sequence[int], lows: Sequence[int], q: Sequence[int], tolerance: int = 0) -> None:
    """1 and 2 from per-leg aggregates (sum and minimum of x[.][k]), as the database computes them."""
    for k, (held, expected) in enumerate(zip(totals, q, strict=True)):
        if abs(held - expected) > tolerance:
            raise InvariantViolation(
                f"Conservation broken on leg #{k}: holdings sum to {qty_str(held)}, q is {qty_str(expected)}"
            )
    for k, low in enumerate(lows):
        if low < 0:
            raise InvariantViolation(f"Negative holding: someone would hold {qty_str(low)} of leg #{k}")


def check_zero_sum(*deltas: Sequence[int]) -> None:
    """3. Reallocation only: the deltas of a trade sum to the zero vector."""
    if not deltas:
        return
    for k in range(len(deltas[0])):
        if sum(d[k] for d in deltas) != 0:
            raise InvariantViolation(f"Trade is not zero-sum on leg #{k}")


def check_settlement_sum(payout_by_holder: Mapping[str, int], q: Sequence[int], prices: Sequence[int]) -> None:
    """4. sum_i payout_i == q . S exactly."""
    total = sum(payout_by_holder.values())
    expected = payout(q, prices)
    if total != expected:
        raise InvariantViolation(f"Settlement sum {money_str(total)} differs from q.S = {money_str(expected)}")
