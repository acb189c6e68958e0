"""The market's rules as pure functions over exact integers. No Django, no I/O, no floats. The scales
(10**-6 units, 10**-8 rates, 10**-6 prices, 10**-12 money) and the reading of numbers and names are
`oracle.units`, read here too.

Rounding: a trade of N units at rate r moves floor(N * r) of the get leg (in base units), from the
maker to the taker. Both sides move the same integers, so rounding can never create or destroy units;
it favours the maker by less than one base unit (10**-6), and a trade that would move 0 is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markets.domain.timerules import quote_status, rfq_status, session_phase, unopened_reason, when  # noqa: F401 (re-exported)
from oracle import units
from oracle.units import (  # noqa: F401 (the market reads its scales here; they live where the oracle can too)
    MAX_PRICE,
    MAX_QTY_UNITS,
    MAX_RATE,
    MONEY_DP,
    MONEY_SCALE,
    PRICE_DP,
    PRICE_SCALE,
    QTY_DP,
    QTY_SCALE,
    RATE_DP,
    RATE_SCALE,
    name_key,
    to_decimal,
)

MIN_LEGS, MAX_LEGS = 2, 32
# Session ids: 1-64 ASCII letters, digits, - or _, unique ignoring case (the services check uniqueness).
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
STREAM_PREFIX = "session-"


def stream_name(session_id: str) -> str:
    """The ledger stream a session's events go to."""
    return f"{STREAM_PREFIX}{session_id}"


def session_of_stream(stream: str) -> str | None:
    """The session a ledger stream belongs to, or None for a stream that is not a session's."""
    return stream[len(STREAM_PREFIX) :] if stream.startswith(STREAM_PREFIX) else None


MAX_ID = 2**63 - 1
_ID_TEXT = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)

ROLES = ("organiser", "trader", "maker")
HOLDER_ROLES = ("trader", "maker")


class DomainError(Exception):
    """A rule was broken; `code` is stable for programs, `message` is for people.

    `kind` says what sort of refusal it is: "invalid" (the input is wrong), "conflict" (the market's
    state refuses it now), "forbidden", "not_found", "unauthenticated", "unavailable" (the storage
    refused). Each edge turns the kind into its own form (an HTTP status, an inline error, a CLI exit;
    see markets.errors), so the rules never need to know which edge asked.
    """

    code = "invalid"
    kind = "invalid"

    def __init__(self, message: str, code: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind


class InvariantViolation(DomainError):
    code = "invariant_violation"
    kind = "conflict"


# ---------------------------------------------------------------- parsing and formatting


def parse_fixed(value: object, *, dp: int, what: str, max_value: int, allow_zero: bool = False) -> int:
    """`oracle.units.parse_fixed` with its refusal as a DomainError (code invalid_number)."""
    try:
        return units.parse_fixed(value, dp=dp, what=what, max_value=max_value, allow_zero=allow_zero)
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_number") from None


def parse_qty(value: object, what: str = "Quantity", allow_zero: bool = False) -> int:
    return parse_fixed(value, dp=QTY_DP, what=what, max_value=MAX_QTY_UNITS, allow_zero=allow_zero)


def parse_rate(value: object, what: str = "Rate") -> int:
    return parse_fixed(value, dp=RATE_DP, what=what, max_value=MAX_RATE)


def parse_price(value: object, what: str = "Price") -> int:
    return parse_fixed(value, dp=PRICE_DP, what=what, max_value=MAX_PRICE)


def parse_id(value: object) -> int | None:
    """A row id written one way only: a positive int, or its plain decimal digits (no sign, spaces,
    leading zeros or decimal point). None when `value` is not such an id (the caller says "unknown")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= MAX_ID else None
    if isinstance(value, str) and _ID_TEXT.fullmatch(value):
        number = int(value)
        return number if number <= MAX_ID else None
    return None


def fmt(base: int, dp: int) -> str:
    return units.fmt(base, dp)


def qty_str(base: int) -> str:
    return fmt(base, QTY_DP)


def rate_str(base: int) -> str:
    return fmt(base, RATE_DP)


def price_str(base: int) -> str:
    return fmt(base, PRICE_DP)


def money_str(base: int) -> str:
    return fmt(base, MONEY_DP)


def money_base(amount: str) -> int:
    """An exact money string (12 dp, as payouts and cash are recorded) in base units; a legacy log may write
    fewer places, never more."""
    return int(Decimal(amount).scaleb(MONEY_DP, context=units.EXACT))


# ---------------------------------------------------------------- sessions


def validate_legs(legs: Sequence[object]) -> list[str]:
    """Leg names as they will be kept: 2 to 32 names of `units.LEG_RULE`, case kept (`GOLD 3m`), blanks
    tidied, and distinct ignoring case and spacing (`Gold 3M` is the same leg as `GOLD 3m`)."""
    if isinstance(legs, str) or not isinstance(legs, Sequence):
        raise DomainError("Legs must be a list of names", "invalid_legs")
    names = []
    for leg in legs:
        if not isinstance(leg, str):
            raise DomainError("Each leg must be a name such as AAPL or GOLD 3m", "invalid_legs")
        problem = units.leg_text_problem(leg)
        if problem is not None:
            raise DomainError(f"{leg[:30]!r} is not a valid leg name: it {problem}", "invalid_legs")
        name = units.tidy_name(leg)
        if len(name) > units.MAX_LEG_NAME or not units.LEG_NAME.fullmatch(name):
            raise DomainError(f"{leg[:30]!r} is not a valid leg name ({units.LEG_RULE})", "invalid_legs")
        names.append(name)
    if not MIN_LEGS <= len(names) <= MAX_LEGS:
        raise DomainError(f"A session needs {MIN_LEGS} to {MAX_LEGS} legs, not {len(names)}", "invalid_legs")
    seen: dict[str, str] = {}
    repeated = []
    for name in names:
        if name_key(name) in seen:
            repeated.append(seen[name_key(name)])
        seen.setdefault(name_key(name), name)
    if repeated:
        raise DomainError(
            f"Legs must be distinct (ignoring case): {', '.join(dict.fromkeys(repeated))} repeated", "invalid_legs"
        )
    return names


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
    room: Sequence[int] | None = None,
) -> TradeMove:
    """Check a trade against both inventories and return what it moves. `room`: how far below zero each
    leg may go (the session's short limit; none by default: no internal shorting)."""
    gi, ge = leg_index(legs, give_leg), leg_index(legs, get_leg)
    if gi == ge:
        raise DomainError("The give leg and the get leg must differ", "same_leg")
    receive = trade_receive(quantity, rate)
    if receive <= 0:
        raise DomainError("This trade is too small: it would deliver 0 units at this rate", "trade_too_small")
    room = room or [0] * len(legs)
    for who, held, k, leg, need in (
        ("taker", taker_holding[gi], gi, give_leg, quantity),
        ("maker", maker_holding[ge], ge, get_leg, receive),
    ):
        if held + room[k] < need:
            raise short_of(f"the {who}", held, room[k], leg, need)
    return TradeMove(gi, ge, quantity, receive)


def short_of(who: str, held: int, room: int, leg: str, need: int) -> DomainError:
    """The refusal of giving `need` of a leg of which `who` may give `held` (+ `room` short)."""
    holds = "hold" if who == "you" else "holds"
    if room:
        return DomainError(
            f"Short limit: {who} {holds} {qty_str(held)} {leg} and may go short {qty_str(room)} at most, "
            f"not give {qty_str(need)}",
            "short_limit",
            "conflict",
        )
    return DomainError(
        f"Insufficient inventory: {who} {holds} {qty_str(held)} {leg}, needs {qty_str(need)}",
        "insufficient_inventory",
        "conflict",
    )


def leg_index(legs: Sequence[str], leg: object) -> int:
    """Where `leg` is among the session's legs, matched ignoring ASCII case and spacing (see `name_key`).
    A name holding anything outside the ASCII set of leg names is refused as such (invalid_leg_name), never
    folded into the leg it looks like (the Kelvin sign in `KO` is not a K)."""
    problem = units.leg_text_problem(leg) if isinstance(leg, str) else None
    if problem is not None:
        raise DomainError(f"{leg[:30]!r} is not a leg name: it {problem}", "invalid_leg_name")
    if isinstance(leg, str):
        key = name_key(leg)
        for k, name in enumerate(legs):
            if name_key(name) == key:
                return k
    raise DomainError(f"Unknown leg {str(leg)[:30]!r}: this session trades {', '.join(legs)}", "unknown_leg")


def leg_map(legs: Sequence[str], given: Mapping[str, object], what: str) -> dict[str, object]:
    """{leg: value} from a mapping keyed by leg names as people type them (any case). Two keys for one
    leg are refused rather than one silently winning, and so are names that are not legs."""
    result: dict[str, object] = {}
    spelled: dict[str, str] = {}
    unknown = []
    for key, value in given.items():
        try:
            leg = legs[leg_index(legs, key)]
        except DomainError as exc:
            if exc.code != "unknown_leg":
                raise  # a look-alike of a leg is refused as such (invalid_leg_name)
            unknown.append(str(key)[:30])
            continue
        if leg in result:
            raise DomainError(
                f"Two {what}s given for {leg} ({spelled[leg]!r} and {str(key)[:30]!r}): give one", f"duplicate_{what}"
            )
        result[leg], spelled[leg] = value, str(key)
    if unknown:
        raise DomainError(f"Unknown leg {', '.join(unknown)}: this session trades {', '.join(legs)}", "unknown_leg")
    return result


# ---------------------------------------------------------------- settlement


def payout(holding: Sequence[int], prices: Sequence[int]) -> int:
    """x_i . S in money base units (10**-12), exact."""
    return sum(x * s for x, s in zip(holding, prices, strict=True))


def payouts(holdings: Mapping[str, Sequence[int]], prices: Sequence[int]) -> dict[str, int]:
    return {holder: payout(row, prices) for holder, row in holdings.items()}


# The five invariants (markets.domain.invariants), where every caller has always found them.
from markets.domain.invariants import (  # noqa: E402, F401
    check_conservation,
    check_leg_totals,
    check_non_negative,
    check_payouts_not_negative,
    check_settlement_sum,
    check_short_bounds,
    check_zero_sum,
)
