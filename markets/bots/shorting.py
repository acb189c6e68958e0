"""Bounded shorting for the bots, pure (no Django, no I/O): how much of a leg a bot may give beyond what
it holds (its short limit, within what the pool's gross cap leaves), and whether a change of its holdings
passes the rules the services apply (`markets.domain.margin`: the bounds, the pool's cap, and W after
>= the requirement, or a reduce-only trade that raises W). A bot sends no trade these would refuse."""

from __future__ import annotations

from collections.abc import Mapping

from markets.domain import DomainError
from markets.domain import margin as rules


def on(market) -> bool:
    """Whether the session (`policy.Market`) lets holdings go short."""
    return bool(market.short_caps)


def may_give(market, bot: str, leg: str) -> int:
    """The most of `leg` `bot` may give now: what it holds plus its short limit, less what the pool is
    already short of the leg beyond the bot's own short (0 where that is nothing)."""
    held = market.holdings.get(bot, {}).get(leg, 0)
    if not on(market):
        return max(0, held)
    others = market.gross_short.get(leg, 0) - max(0, -held)
    return max(0, held + market.short_caps[leg] - max(0, others))


def passes(market, bot: str, change: Mapping[str, int]) -> bool:
    """Whether the services' margin rule lets `bot`'s holdings move by `change` (leg -> units) at the
    latest prices: the pure rule itself, so a bot and the services never disagree on the same facts."""
    if not on(market):
        return all(market.holdings.get(bot, {}).get(leg, 0) + d >= 0 for leg, d in change.items())
    legs = list(market.legs)
    row = market.holdings.get(bot, {})
    before = [row.get(leg, 0) for leg in legs]
    after = [x + change.get(leg, 0) for x, leg in zip(before, legs, strict=True)]
    caps = [market.short_caps[leg] for leg in legs]
    gross = [
        market.gross_short.get(leg, 0) - max(0, -b) + max(0, -a) for leg, b, a in zip(legs, before, after, strict=True)
    ]
    prices = [market.prices.get(leg) for leg in legs]
    try:
        rules.check_bounds(after, caps, legs)
        rules.check_gross(gross, caps, legs)
        if rules.has_shorts(before) or rules.has_shorts(after):
            rules.check_move(bot, before, after, prices, market.margin, legs)
    except DomainError:
        return False
    return True


def trade_change(give: str, get: str, quantity: int, receive: int) -> dict[str, int]:
    """The taker's change when it gives `quantity` of `give` for `receive` of `get` (the maker's: minus)."""
    return {give: -quantity, get: receive}
