"""The reference model's bounded shorting: what the short limit, the pool's gross cap and the margin rule
refuse, who liquidation takes after the ticks and what auto-deleveraging moves, and what settlement pays
when a fixing lies outside the box. Restated from the issue apart from the services (`markets.services.margin`),
on the same pure rules for the numbers (`markets.domain.margin.assess` for W and the requirement,
`markets.domain.liquidation.plan_deleverage` and `haircut`): the point is that the services apply them at
the right moments, to the right rows, at the right prices, and write exactly what they decide.

Refusal codes: `short_limit` (a holding below minus its limit, or the pool's shorts of a leg past the cap),
`margin` (W after the move below the requirement, unless the participant was already under it and the
move raises W: reduce-only), `no_price` (a position with shorts holds a leg the oracle has not priced).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markets import domain
from markets.domain import liquidation
from markets.domain import margin as rules


@dataclass(frozen=True)
class Shorting:
    """A shorting session's facts: its settings, q, and the oracle's latest price of each leg at the
    command's clock (None: not priced yet)."""

    settings: rules.MarginSettings
    q: Sequence[int]
    prices: Sequence[int | None]

    @property
    def caps(self) -> list[int]:
        return self.settings.caps(self.q)


def room(s: Shorting | None, k: int) -> int:
    """How far below zero leg k may go (0 where shorting is off)."""
    return s.caps[k] if s is not None else 0


def short_code(s: Shorting | None) -> str:
    """What refuses giving more than is held (plus the room): the short limit, or plain inventory."""
    return "short_limit" if s is not None else "insufficient_inventory"


def _priced(row: Sequence[int], prices: Sequence[int | None]) -> bool:
    return all(prices[k] is not None for k, v in enumerate(row) if v != 0)


def margin_ok(before: Sequence[int], after: Sequence[int], s: Shorting) -> set[str]:
    """One participant's side of a move: W >= IM after it, or (under IM before) W rises."""
    if not rules.has_shorts(before) and not rules.has_shorts(after):
        return set()
    if (rules.has_shorts(after) and not _priced(after, s.prices)) or (
        rules.has_shorts(before) and not _priced(before, s.prices)
    ):
        return {"no_price"}
    now = rules.assess(after, s.prices, s.settings)
    if now.w >= now.requirement:
        return set()
    was = rules.assess(before, s.prices, s.settings)
    return set() if was.w < was.requirement and now.w > was.w else {"margin"}


def move_refusals(
    s: Shorting | None, holdings: Mapping[str, Sequence[int]], deltas: Mapping[str, Sequence[int]]
) -> set[str]:
    """Every refusal a move (`deltas`: holder -> change per leg) meets in a shorting session: a holding
    below minus its limit, the pool's shorts past the cap (only a move that lowers some holding can), the
    margin rule on every side that is short before or after."""
    if s is None:
        return set()
    caps = s.caps
    after = {u: [x + d for x, d in zip(holdings[u], deltas[u], strict=True)] for u in deltas}
    refusals = set()
    if any(v < -caps[k] for row in after.values() for k, v in enumerate(row)):
        refusals.add("short_limit")
    if any(d < 0 for row in deltas.values() for d in row):
        rows = {u: after.get(u, row) for u, row in holdings.items()}
        for k, cap in enumerate(caps):
            if sum(max(0, -row[k]) for row in rows.values()) > cap:
                refusals.add("short_limit")
    if any(rules.has_shorts(row) for row in after.values()):
        for u in deltas:
            refusals |= margin_ok(holdings[u], after[u], s)
    return refusals


def trade_deltas(legs: Sequence[str], rfq, receive: int) -> tuple[list[int], list[int]]:
    """The taker's and the maker's change per leg when the RFQ (`model.Rfq`) trades for `receive`."""
    legs = list(legs)
    gi, ge = legs.index(rfq.give_leg), legs.index(rfq.get_leg)
    taker, maker = [0] * len(legs), [0] * len(legs)
    taker[gi], taker[ge] = -rfq.quantity, receive
    maker[gi], maker[ge] = rfq.quantity, -receive
    return taker, maker


def order_refusals(m, actor: str, give_leg: str | None, get_leg: str | None, qty: int, limit: object) -> set[str]:
    """A limit order (`model.Market` m) gives no more than is free (held less reserved) plus the short
    limit; in a shorting session it passes the margin rule as if it filled whole at its limit now."""
    if give_leg is None:
        return set()
    refusals = (
        {"short_limit" if m.shorting else "insufficient_available"} if m.cannot_give(actor, give_leg, qty) else set()
    )
    if m.shorting is None or get_leg is None or get_leg == give_leg:
        return refusals
    try:
        rate = domain.parse_rate(limit)
    except domain.DomainError:
        return refusals
    legs = list(m.legs)
    change = [0] * len(legs)
    change[legs.index(give_leg)], change[legs.index(get_leg)] = -qty, domain.trade_receive(qty, rate)
    return refusals | move_refusals(m.shorting, m.holdings, {actor: change})


# ---------------------------------------------------------------- liquidation


@dataclass(frozen=True)
class Liquidated:
    """One participant taken by liquidation: what it held, and either its buy-back orders for the next
    batch (give leg, get leg, quantity, limit) or the deleveraging plan."""

    user: int
    holdings: list[int]
    plan: liquidation.Deleverage | None
    orders: tuple = ()


def liquidations(
    holdings: Mapping[int, Sequence[int]],
    prices: Sequence[int | None],
    settings,
    *,
    waiting: frozenset[int] = frozenset(),
    buy_back_band=None,
    no_buy_back: frozenset[int] | set[int] = frozenset(),
) -> list[Liquidated]:
    """Who a liquidation run takes (by user id: W < 0 at the latest prices, every leg it holds priced, not
    waiting for its buy-back batch), each re-judged after the ones before it (their deleveraging may have
    paid it enough). With `buy_back_band` (a batch session whose next cut comes before trading ends), a
    participant's shorts are offered back in the next batch at the band's edge where that gives orders;
    otherwise they are deleveraged at once."""
    rows = {u: list(row) for u, row in holdings.items()}
    due = [
        u
        for u, row in sorted(rows.items())
        if u not in waiting
        and rules.has_shorts(row)
        and _priced(row, prices)
        and rules.assess(row, prices, settings).w < 0
    ]
    taken = []
    for user in due:
        row = rows[user]
        if rules.assess(row, prices, settings).w >= 0:
            continue
        if buy_back_band is not None and user not in no_buy_back:
            orders = liquidation.buy_back_orders(row, prices, buy_back_band)  # type: ignore[arg-type]
            if orders:
                taken.append(Liquidated(user, list(row), None, tuple(orders)))
                continue
        plan = liquidation.plan_deleverage(user, rows, prices)  # type: ignore[arg-type]
        taken.append(Liquidated(user, list(row), plan))
        for u, deltas in plan.deltas.items():
            rows[u] = [x + d for x, d in zip(rows[u], deltas, strict=True)]
    return taken


def payouts(holdings: Mapping, prices: Sequence[int], q: Sequence[int]) -> liquidation.Haircut:
    """What settlement pays at `prices` (money base units): x_i.S, haircut pro rata where some is below 0."""
    gross = {u: sum(x * p for x, p in zip(row, prices, strict=True)) for u, row in holdings.items()}
    return liquidation.haircut(gross, sum(x * p for x, p in zip(q, prices, strict=True)))
