"""Exact fills in whole base units, in a closed pool (no house account absorbs dust).

`largest_remainder` is Hamilton's method: everyone gets the floor of their exact share, and the units left
over go one each to the largest fractional parts (ties to the smaller key). `integerize` turns a batch's
exact fills (Fractions of units given, at uniform prices) into integers such that:

- per leg, the units given equal the units received exactly (no unit created or destroyed);
- no order gives more than its exact fill (so never more than its quantity);
- no order receives less than its limit allows: received * RATE_SCALE >= given * limit;
- and, subject to those, each order receives its exact value at the clearing rate up to its leg's dust.

How: every order gives floor(exact) units (none, if that buys less than one base unit of what it receives:
such a fill could only be paid by rounding up, at the others' expense; it rests instead). Leg k then has T_k units to hand to the orders receiving it.
Each receiver first gets L = ceil(given * limit / RATE_SCALE), the least its limit allows; the rest of T_k
goes by largest remainder in proportion to what each would get beyond L at the exact rate,
given * p_give / p_get - L. If a leg cannot pay every receiver's L (its givers rounded down more than its
receivers' limits leave room for), the receiver giving the most is repaired: it gives just enough less that
its L fits, which frees units of the leg it gives; the loop goes on until every leg pays. Each step gives
strictly less, and the n-th repair of one order takes at least 2**n - 1 units, so an order is repaired at most
about log2(its units) times: the loop ends well within its cap (64 per order), and a batch that did not would
not clear.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from oracle.units import RATE_SCALE


def largest_remainder(total: int, weights: Sequence[tuple[Hashable, int | Fraction]]) -> dict[Hashable, int]:
    """Split `total` (an integer >= 0) in proportion to `weights` (>= 0, ints or Fractions, keyed; keys
    comparable). Each key gets floor(total * w / sum w); the units left over go one each to the largest
    remainders, ties to the smaller key. With all weights zero the units go by the same rule with equal
    weights."""
    if total < 0:
        raise ValueError("cannot share a negative total")
    if not weights:
        if total:
            raise ValueError("nobody to share with")
        return {}
    whole = sum(w for _, w in weights)
    if whole == 0:
        weights = [(key, 1) for key, _ in weights]
        whole = len(weights)
    shares = {}
    remainders = []
    for key, weight in weights:
        share, rest = divmod(total * weight, whole)  # rest / whole is the fractional part
        shares[key] = int(share)
        remainders.append((-rest, key))
    left = total - sum(shares.values())
    for _, key in sorted(remainders)[:left]:
        shares[key] += 1
    return shares


@dataclass(frozen=True)
class Leg:
    """What integerize needs of an order: its legs, its limit and its exact fill (units given)."""

    id: int
    give: int
    get: int
    limit: int
    exact: Fraction


class RoundingFailed(ArithmeticError):
    """The repair loop did not settle within its cap (the batch then does not clear)."""


def least_received(given: int, limit: int) -> int:
    return -((-given * limit) // RATE_SCALE)


def integerize(orders: Sequence[Leg], prices: Sequence[int], n: int) -> dict[int, tuple[int, int]]:
    """{order id: (given, received)} in base units, for the orders with a non-zero fill (see module doc)."""
    by_id = {o.id: o for o in orders}

    def worth(i: int, units: int) -> int:
        """`units`, or 0 if at the clearing rate they buy less than one base unit of the leg received."""
        o = by_id[i]
        return units if units * prices[o.give] >= prices[o.get] else 0

    given = {o.id: worth(o.id, o.exact.numerator // o.exact.denominator) for o in orders}
    receivers: list[list[int]] = [[] for _ in range(n)]
    givers: list[list[int]] = [[] for _ in range(n)]
    for o in sorted(orders, key=lambda o: o.id):
        receivers[o.get].append(o.id)
        givers[o.give].append(o.id)
    need, supply, paying = [0] * n, [0] * n, [0] * n
    for o in orders:
        if given[o.id] > 0:
            need[o.get] += least_received(given[o.id], o.limit)
            supply[o.give] += given[o.id]
            paying[o.get] += 1

    def set_given(i: int, units: int) -> None:
        o = by_id[i]
        units = worth(i, units)
        if given[i] > 0:
            need[o.get] -= least_received(given[i], o.limit)
            supply[o.give] -= given[i]
            paying[o.get] -= 1
        given[i] = units
        if units > 0:
            need[o.get] += least_received(units, o.limit)
            supply[o.give] += units
            paying[o.get] += 1

    cap = 64 * len(orders) + 64
    repairs: dict[int, int] = {}
    for _ in range(cap):
        short = next((k for k in range(n) if need[k] > supply[k] or (supply[k] and not paying[k])), None)
        if short is None:
            break
        if paying[short]:
            target, units = _repair(given, by_id, receivers[short], need[short] - supply[short])
            # The n-th repair of one order takes at least 2**n - 1 units: two legs that keep short-changing
            # each other (orders at their limits) cannot walk each other down one unit at a time.
            done = repairs.get(target, 0)
            set_given(target, max(0, min(units, given[target] - (2**done - 1))))
            repairs[target] = done + 1
        else:  # every receiver of the leg was repaired away: its givers keep their units
            for i in givers[short]:
                set_given(i, 0)
    else:
        raise RoundingFailed(f"the rounding did not settle within {cap} repairs")
    result: dict[int, tuple[int, int]] = {}
    for k in range(n):
        ids = [i for i in receivers[k] if given[i] > 0]
        least = {i: least_received(given[i], by_id[i].limit) for i in ids}
        # What each would get at the exact rate, in 1/p_k units: given * p_give (an integer).
        weights = [(i, max(given[i] * prices[by_id[i].give] - least[i] * prices[k], 0)) for i in ids]
        shares = largest_remainder(supply[k] - need[k], weights)
        for i in ids:
            result[i] = (given[i], least[i] + shares[i])
    return result


def _repair(given: dict[int, int], by_id: dict[int, Leg], receivers: list[int], deficit: int) -> tuple[int, int]:
    """The receiver giving the most (ties: the larger id) and what it should give instead: just enough
    less that the leg's receivers need `deficit` fewer units (or nothing, if even that is not enough)."""
    target = max((i for i in receivers if given[i] > 0), key=lambda i: (given[i], i))
    o = by_id[target]
    least = least_received(given[target], o.limit)
    if least < deficit:
        return target, 0
    return target, min(given[target] - 1, (least - deficit) * RATE_SCALE // o.limit)
