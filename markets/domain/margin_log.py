"""Bounded shorting redone from the log alone (what `verify_ledger` runs): walking a session's events in
order, the holdings before each one; every liquidation judged again (and its buy-back orders, where it
placed them, given again by the rule) from the holdings and the prices it
names (W below 0 at them), every auto-deleveraging planned again and compared unit by unit, and invariant
2 with shorts (nobody below minus the cap, the pool's shorts within it) after every event that moves
holdings. Pure: the caller checks that the ticks named hold the prices used."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from markets.domain import liquidation, qty_str
from markets.domain import margin as rules
from markets.domain import orders as order_rules


@dataclass(frozen=True)
class PricesUsed:
    """Prices a liquidation or deleveraging used, with the tick ids it names (checked by the caller)."""

    seq: int
    prices: dict[str, int]
    ticks: dict[str, int]


def walk(events: Iterable[Any]) -> Iterator[str | PricesUsed]:
    """Problems found (text), and the prices each liquidation used (for the caller's tick check)."""
    legs: list[str] = []
    q: list[int] = []
    settings = rules.OFF
    x: dict[int, list[int]] = {}
    band = ""  # the batch band, where the buy-back orders' limits sit
    buy_back: tuple[str, list] | None = None  # (where, the orders a liquidation owes) until they are placed
    for event in events:
        d = event.data
        where = f"event #{event.seq} ({event.type})"
        touched: dict[int, list[int]] = {}
        if buy_back is not None and not (event.type == "OrderPlaced" and d.get("liquidation")):
            if buy_back[1]:
                yield f"{buy_back[0]}: the rule gives buy-back orders {buy_back[1]} that were not placed"
            buy_back = None
        if event.type == "SessionCreated":
            legs, q, settings = list(d["legs"]), list(d["q"]), rules.settings_of(d)
            band = order_rules.settings_of(d).band
            if not settings.on:
                return
        elif event.type == "InitialAllocationAssigned":
            x = {int(u): list(row) for u, row in d.get("holdings_by_id", {}).items()}
        elif event.type == "TradeExecuted":
            touched = {d["taker_id"]: d["taker_deltas"], d["maker_id"]: d["maker_deltas"]}
        elif event.type == "BatchCleared" and d["result"]["result"] == "cleared":
            for fill in d["result"]["fills"]:
                row = touched.setdefault(fill["owner"], [0] * len(legs))
                row[fill["give"]] -= fill["given"]
                row[fill["get"]] += fill["received"]
        elif event.type == "PositionLiquidated":
            yield from _liquidation(where, event, d, legs, x, settings)
            if d["method"] == "buy_back":
                prices = [d["prices"].get(leg) for leg in legs]
                owed = liquidation.buy_back_orders(x.get(d["user_id"], []), prices, order_rules.band_fraction(band))
                buy_back = (where, [(legs[g], legs[k], n, r) for g, k, n, r in owed])
        elif event.type == "OrderPlaced" and d.get("liquidation"):
            placed = (d["give_leg"], d["get_leg"], d["quantity"], d["limit_rate"])
            if buy_back is None or not buy_back[1] or buy_back[1][0] != placed:
                expected = buy_back[1][0] if buy_back and buy_back[1] else "none"
                yield f"{where}: buy-back order {placed}, the rule gives {expected}"
            else:
                buy_back[1].pop(0)
        elif event.type == "AutoDeleveraged":
            yield from _deleveraging(where, event, d, legs, x)
            touched = {int(u): row for u, row in d["deltas_by_id"].items()}
        for user, delta in touched.items():
            row = x.setdefault(user, [0] * len(legs))
            for k, change in enumerate(delta):
                row[k] += change
        if touched:
            yield from _bounds(where, x, settings.caps(q), legs, touched)


def _bounds(where: str, x: dict[int, list[int]], caps: list[int], legs: list[str], touched) -> Iterator[str]:
    for user in sorted(touched):
        for k, v in enumerate(x[user]):
            if v < -caps[k]:
                yield f"{where}: user #{user} holds {qty_str(v)} {legs[k]}, below minus the short limit {qty_str(caps[k])}"
    for k, leg in enumerate(legs):
        short = sum(-row[k] for row in x.values() if row[k] < 0)
        if short > caps[k]:
            yield f"{where}: the pool is short {qty_str(short)} {leg}, over the cap {qty_str(caps[k])}"


def _liquidation(where, event, d, legs, x, settings) -> Iterator[str | PricesUsed]:
    user = d["user_id"]
    if x.get(user) != d["holdings"]:
        yield f"{where}: it records holdings {d['holdings']}, the log gives {x.get(user)}"
    yield PricesUsed(event.seq, d["prices"], d["ticks"])
    prices = [d["prices"].get(leg) for leg in legs]
    try:
        judged = rules.assess(x.get(user, []), prices, settings, legs)
    except Exception as exc:  # a price missing for a leg held
        yield f"{where}: W cannot be judged again: {exc}"
        return
    if judged.w >= 0:
        yield f"{where}: user #{user} had W {rules.money_text(judged.w)} >= 0 at the prices it names: no liquidation was due"
    if rules.money_text(judged.w) != d["W"] or rules.money_text(judged.requirement) != d["requirement"]:
        yield f"{where}: it records W {d['W']} and requirement {d['requirement']}, the holdings and prices give {rules.money_text(judged.w)} and {rules.money_text(judged.requirement)}"


def _deleveraging(where, event, d, legs, x) -> Iterator[str | PricesUsed]:
    yield PricesUsed(event.seq, d["prices"], d["ticks"])
    prices = [d["prices"][leg] for leg in legs]
    plan = liquidation.plan_deleverage(d["user_id"], x, prices)
    again = plan.payload(legs)
    for key in ("ranking", "moves", "paid", "deltas_by_id", "bankrupt"):
        if d.get(key) != again[key]:
            yield f"{where}: its {key} is {str(d.get(key))[:200]}, the rule gives {str(again[key])[:200]}"
    moved = d["deltas_by_id"].values()
    for k, leg in enumerate(legs):
        if sum(row[k] for row in moved) != 0:
            yield f"{where}: it is not zero-sum on {leg}"
