"""Corporate actions on a pool (issue #33), pure: what a split, a dividend, a spin-off, a merger or a
rename does to `q` and to every holding at its cut, exactly. No database, no clock. This is the first part
of the issue: the service that applies an action at its cut in one command, its events and
`verify_ledger` redoing it with these same functions come next.

Units as everywhere: holdings and `q` in base units of 10**-6 units, prices in 10**-6, money (cash) in
10**-12 (quantity x price). A ratio is an exact fraction ("10/1", "0.5").

- `scale` is the one rule of every action that makes units from units (a split by `r`, a spin-off's new
  leg at `r` per unit of its parent, a stock merger's units of the acquirer): each holder is entitled to
  `e_i = x_i . r` exactly; they get `floor(e_i)` (toward minus infinity, so a short's obligation rounds
  up, never down), the pool gets `q' = floor(q . r)`, and the units left between the two (`q' - sum of the
  floors`, fewer than the holders) go one each to the largest fractions (ties: the lower user id). What
  each holder gets differs from `e_i` by less than one base unit; that difference is settled as **cash in
  lieu** at the price in force after the action, `(e_i - x'_i) . P'`: a holder whose fraction was rounded
  away is paid it, one given a leftover unit pays for the part it did not own. The amounts are whole money
  units (10**-12) summing to `floor((q r - q') . P')`, each within one unit of its exact value (floors, then
  the units left to the largest remainders), so the pool's value is kept to the money unit and any two
  allocations of the same `q` are paid the same total.
- `dividend`: `cash_i = x_i . amount` (a short owes it), summing to `q . amount` exactly.
- `cash_merger`: the leg is paid out at `cash` per unit and closed: `cash_i = x_i . cash`, x and q to 0.

Invariant 4 extended: `sum payouts = q . S_t2 + sum of the cash recorded`, since every amount of cash is
paid into the pool by the action that records it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from markets.domain import DomainError, money_str, parse_price

MAX_RATIO = Fraction(1000)
MIN_RATIO = Fraction(1, 1000)


@dataclass(frozen=True)
class Scaled:
    """One leg's units after `scale`: the pool's new quantity, each holder's, who got a leftover unit,
    and each holder's cash in lieu (money base units, either sign)."""

    q: int
    x: dict[int, int]
    leftover: tuple[int, ...]  # user ids given one more base unit, in the order they were given
    cash: dict[int, int]

    @property
    def cash_total(self) -> int:
        return sum(self.cash.values())


def parse_ratio(text: object, what: str = "ratio") -> Fraction:
    """An action's ratio as an exact fraction: "10/1", "1/3", "0.5", 2. Refused: zero, negative, more
    than 1000 or less than 1/1000, not a number."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DomainError(f"The {what} must be a fraction such as 10/1 or 0.5", "invalid_ratio")
    raw = str(text).strip()
    try:
        if raw.count("/") == 1:
            top, bottom = (part.strip() for part in raw.split("/"))
            if not (top.isascii() and top.isdigit() and bottom.isascii() and bottom.isdigit()):
                raise ValueError(raw)
            value = Fraction(int(top), int(bottom))
        else:
            if not raw or not all(c.isascii() and (c.isdigit() or c == ".") for c in raw) or raw.count(".") > 1:
                raise ValueError(raw)
            value = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise DomainError(
            f"The {what} must be a fraction such as 10/1 or 0.5, not {raw[:20]!r}", "invalid_ratio"
        ) from None
    if not MIN_RATIO <= value <= MAX_RATIO:
        raise DomainError(f"The {what} must be from 1/1000 to 1000, not {raw[:20]}", "invalid_ratio")
    return value


def ratio_text(value: Fraction) -> str:
    """A ratio as the record writes it: "10/1", "1/3"."""
    return f"{value.numerator}/{value.denominator}"


def scale(q: int, x: Mapping[int, int], ratio: Fraction, price_after: int) -> Scaled:
    """A leg's units multiplied by `ratio`, exactly as the module says: floors, the leftover units by
    largest remainder, cash in lieu of every difference at `price_after` (price base units per unit)."""
    if ratio <= 0:
        raise ValueError("a ratio is positive")
    new_q = q * ratio.numerator // ratio.denominator
    entitled = {u: Fraction(v) * ratio for u, v in x.items()}
    floors = {u: e.numerator // e.denominator for u, e in entitled.items()}
    left = new_q - sum(floors.values())
    if not 0 <= left <= len(x):
        raise ValueError(f"the holdings do not sum to q: {left} units left over")
    order = sorted(x, key=lambda u: (-(entitled[u] - floors[u]), u))
    given = tuple(order[:left])
    new_x = dict(floors)
    for u in given:
        new_x[u] += 1
    # (e_i - x'_i) base units of the leg at price_after, in money base units (qty base x price base): their
    # sum, (q r - q') . P', floored to the money unit, split by largest remainder (ties: the lower user id), so
    # that any two allocations of the same q (the holdings, the initial allocation) are paid the same total.
    exact = {u: (entitled[u] - new_x[u]) * price_after for u in x}
    cash = {u: _floor(v) for u, v in exact.items()}
    short = _floor(sum(exact.values(), Fraction(0))) - sum(cash.values())
    for u in sorted(x, key=lambda u: (-(exact[u] - cash[u]), u))[:short]:
        cash[u] += 1
    return Scaled(new_q, new_x, given, cash)


def split(q: int, x: Mapping[int, int], ratio: Fraction, price_before: int) -> tuple[Scaled, int]:
    """A split (or a reverse split: ratio < 1) of a leg whose price in force is `price_before`: the new
    units (`scale` at the price after, `price_before / ratio` floored to the price unit) and that price."""
    price_after = _floor(Fraction(price_before) / ratio)
    return scale(q, x, ratio, price_after), price_after


def dividend(x: Mapping[int, int], amount: int) -> dict[int, int]:
    """Each holder's cash for `amount` per unit (price base units): x . amount, a short's negative."""
    return {u: v * amount for u, v in x.items()}


def cash_merger(x: Mapping[int, int], cash: int) -> dict[int, int]:
    """Each holder's cash when the leg is bought out at `cash` per unit: x . cash (a short pays it)."""
    return dividend(x, cash)


def with_cash(gross: Mapping[int, int], cash: Mapping[int, int]) -> dict[int, int]:
    """Each holder's x . S plus its cash: the settlement's payout before any haircut."""
    return {u: gross.get(u, 0) + cash.get(u, 0) for u in gross.keys() | cash.keys()}


def outcome(
    kind: str,
    leg: str,
    params: Mapping[str, str],
    legs: list[str],
    q: list[int],
    matrix: Mapping[int, list[int]],
    prices: list[int | None],
) -> dict:
    """What applying an action does, as CorporateActionApplied records it (the service writes it, the audit
    makes it again from the holdings before and the prices recorded): q after, each holder's row of
    deltas, its cash (money text), the leftover units and the prices used. `prices` per leg (None: none)."""
    k = legs.index(leg)
    column = {u: row[k] for u, row in matrix.items()}
    q_after = list(q)
    deltas = {u: [0] * len(legs) for u in matrix}
    cash: dict[int, int] = {}
    out: dict = {}
    if kind == "rename":
        out["to"] = params["to"]
    elif kind == "dividend":
        cash = dividend(column, _price(params["amount"]))
    elif kind == "merger" and "cash" in params:
        cash = cash_merger(column, _price(params["cash"]))
        q_after[k] = 0
        for u, x in column.items():
            deltas[u][k] = -x
    else:
        ratio = Fraction(params["ratio"])
        target = k if kind == "split" else legs.index(params["into"])
        if prices[target] is None:
            raise DomainError(f"No price in force for {legs[target]} at the cut: cash in lieu needs one", "no_price")
        if kind == "split":
            made, price_after = split(q[k], column, ratio, prices[k])
            out |= {"price_before": prices[k], "price_after": price_after}
            q_after[k] = made.q
            for u in matrix:
                deltas[u][k] = made.x[u] - column[u]
        else:
            made = scale(q[k], column, ratio, prices[target])
            out["price_into"] = prices[target]
            q_after[k], q_after[target] = 0, q[target] + made.q
            for u in matrix:
                deltas[u][k], deltas[u][target] = -column[u], made.x[u]
        cash = made.cash
        out |= {"ratio": params["ratio"], "leftover": list(made.leftover)}
    return out | {
        "q_before": list(q),
        "q_after": q_after,
        "deltas_by_id": {str(u): row for u, row in sorted(deltas.items()) if any(row)},
        "cash_by_id": {str(u): money_str(v) for u, v in sorted(cash.items()) if v},
    }


def _price(text: str) -> int:
    return parse_price(text, "Price")


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator
