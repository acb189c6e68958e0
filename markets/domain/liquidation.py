"""When margin fails (exact integers and Fractions, no Django): a liquidated participant's buy-back
orders for the next batch, auto-deleveraging of what remains short against the highest-ranked holders of
the leg at the oracle's price, and the settlement haircut that keeps every payout at or above zero when a
fixing lies outside the scenario box. The margin rule itself is `markets.domain.margin`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from markets.domain import RATE_SCALE


@dataclass
class Deleverage:
    """What auto-deleveraging moves: for each short leg, units taken from the ranked holders; each of them
    paid with the liquidated participant's long legs. `deltas` by holder sum to zero on every leg."""

    victim: int
    ranking: dict[int, list[int]] = field(default_factory=dict)  # leg -> holders, highest first
    moves: list[tuple[int, int, int]] = field(default_factory=list)  # (holder, short leg, units taken)
    paid: dict[int, dict[int, int]] = field(default_factory=dict)  # holder -> {long leg: units}
    deltas: dict[int, list[int]] = field(default_factory=dict)
    bankrupt: bool = False

    def payload(self, legs: Sequence[str]) -> dict:
        """AutoDeleveraged's record: the ranking per leg, every unit taken and every unit paid."""
        return {
            "user_id": self.victim,
            "ranking": {legs[k]: holders for k, holders in sorted(self.ranking.items())},
            "moves": [{"from": u, "leg": legs[k], "units": n} for u, k, n in self.moves],
            "paid": {str(u): {legs[j]: n for j, n in sorted(row.items())} for u, row in sorted(self.paid.items())},
            "deltas_by_id": {str(u): row for u, row in sorted(self.deltas.items())},
            "bankrupt": self.bankrupt,
        }


def plan_deleverage(victim: int, holdings: Mapping[int, Sequence[int]], prices: Sequence[int]) -> Deleverage:
    """Close every short of `victim` against the other holders of that leg, highest-ranked first (the most
    units held; then the lower user id), at the oracle's price, paid with the victim's long legs in
    proportion. When the longs are worth less than the shorts at that price (bankrupt), all the longs go
    (the bankruptcy price). Exact: each long leg's payment is ceil(share) of it, split by largest remainder."""
    n = len(prices)
    x = list(holdings[victim])
    plan = Deleverage(victim, deltas={victim: [0] * n})
    shorts = [(k, -v) for k, v in enumerate(x) if v < 0]
    if not shorts:
        return plan
    short_value = sum(s * prices[k] for k, s in shorts)
    long_value = sum(v * prices[k] for k, v in enumerate(x) if v > 0)
    plan.bankrupt = long_value < short_value
    # Units taken, per (holder, leg), and the value each holder is owed.
    owed: dict[int, int] = {}
    for k, need in shorts:
        ranked = sorted(
            (u for u, row in holdings.items() if u != victim and row[k] > 0), key=lambda u: (-holdings[u][k], u)
        )
        plan.ranking[k] = ranked
        for u in ranked:
            if need == 0:
                break
            take = min(need, holdings[u][k])
            need -= take
            plan.deltas.setdefault(u, [0] * n)[k] -= take
            plan.deltas[victim][k] += take
            owed[u] = owed.get(u, 0) + take * prices[k]
            plan.moves.append((u, k, take))
        assert need == 0, "the other holders of a leg always hold at least its shorts (sum of x = q >= 0)"
    # Payment: each long leg j gives ceil(x_j . min(1, V_s/V_l)), split among holders by what they are owed.
    holders = sorted(owed)
    for j, v in enumerate(x):
        if v <= 0 or short_value == 0:
            continue
        total = v if plan.bankrupt else min(v, -(-v * short_value // long_value))
        shares = largest_remainder(total, [owed[u] for u in holders])
        for u, share in zip(holders, shares, strict=True):
            if share:
                plan.deltas[u][j] += share
                plan.deltas[victim][j] -= share
                plan.paid.setdefault(u, {})[j] = share
    return plan


def orders_released(
    moves: Sequence[tuple[int, int, int]],
    held: Mapping[tuple[int, int], int],
    reserved: Mapping[tuple[int, int], int],
    resting: Mapping[tuple[int, int], Sequence[tuple[int, int]]],
) -> list[tuple[int, int]]:
    """After a deleveraging, the resting orders a holder can no longer honour: for each (holder, leg) the
    plan took from, its orders giving that leg, newest first, until what they reserve fits what it now
    holds (`held`, after the move). `resting[(holder, leg)]`: (order id, rest), newest first. Returns
    (holder, order id) to cancel, in that order (else an order could later fill the holder short unasked)."""
    released = []
    for user, k in dict.fromkeys((u, k) for u, k, _ in moves):
        left = reserved.get((user, k), 0)
        for order_id, rest in resting.get((user, k), ()):
            if left <= max(held[(user, k)], 0):
                break
            released.append((user, order_id))
            left -= rest
    return released


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (non-negative), whole units, summing to `total` exactly:
    floors first, then one more to the largest remainders (ties: the earlier)."""
    whole = sum(weights)
    if whole == 0:
        if total:
            raise ValueError("nothing to split by")
        return [0] * len(weights)
    floors = [total * w // whole for w in weights]
    left = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def buy_back_orders(
    x: Sequence[int], reference: Sequence[int], batch_band: Fraction
) -> list[tuple[int, int, int, int]]:
    """A liquidated participant's buy-back orders for the next batch: for each short leg (largest value
    first), its long legs (largest value first) offered at the band's edge, the most the batch can ask
    (the give leg at its lowest, the short leg at its highest), for as much as covers the short there.
    Each is (give leg, get leg, quantity, limit rate 10**-8)."""
    left = list(x)
    orders = []
    shorts = sorted((k for k, v in enumerate(x) if v < 0), key=lambda k: (x[k] * reference[k], k))
    for k in shorts:
        need = -x[k]
        for j in sorted((j for j, v in enumerate(left) if v > 0), key=lambda j: (-left[j] * reference[j], j)):
            if need <= 0:
                break
            rate = reference[j] * (1 - batch_band) / (reference[k] * (1 + batch_band))
            limit = math.floor(rate * RATE_SCALE)
            if limit <= 0:
                continue
            quantity = min(left[j], -(-need * RATE_SCALE // limit))
            if quantity <= 0:
                continue
            orders.append((j, k, quantity, limit))
            left[j] -= quantity
            need -= quantity * limit // RATE_SCALE
    return orders


# ---------------------------------------------------------------- settlement


@dataclass(frozen=True)
class Haircut:
    """Payouts after covering the deficit of negative ones pro rata from the positive ones."""

    paid: dict
    gross: dict
    deficit: int
    factor: Fraction

    @property
    def cut(self) -> dict:
        return {u: self.gross[u] - self.paid[u] for u in self.gross}


def haircut(gross: Mapping, total: int) -> Haircut:
    """`gross`: x_i.S per holder; `total`: q.S (= their sum). With no negative payout, nothing changes.
    Otherwise D = sum of the negatives; every negative is paid 0 and every positive p is paid
    p . q.S / (q.S + D), floored, the remaining base units to the largest remainders (ties: the lower
    holder), so that the payouts sum to q.S exactly and none is below 0."""
    deficit = sum(-v for v in gross.values() if v < 0)
    if deficit == 0:
        return Haircut(dict(gross), dict(gross), 0, Fraction(1))
    holders = sorted(gross, key=lambda u: (0, u, "") if isinstance(u, int) else (1, 0, str(u)))  # ids in number order
    positive = [max(0, gross[u]) for u in holders]
    shares = largest_remainder(max(0, total), positive)
    return Haircut(dict(zip(holders, shares, strict=True)), dict(gross), deficit, Fraction(total, total + deficit))
