"""How S_t2 is taken from ticks. A rule is a small function: (ticks, t2) -> (price, ticks used).

A session records its rule as JSON, e.g. {"rule": "last"} or {"rule": "median", "window": 60}.

Conventions (docs/operations.md, "Checking a fixing by hand", repeats them):
- last: the last tick at or before t2 (ties in time: the later id).
- median: the median of the ticks in the window (t2 - W, t2]; an even count takes the LOWER middle
  value, so the fixing is always a price that was actually quoted, never an average of two.
- twap: the time-weighted average over [t2 - W, t2]: each price counts for as long as it was in force
  inside the window. The price in force at t2 - W is the last tick at or before it, so it counts from
  the window's start until the first tick inside it. The average is floored to the price scale (10**-6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from oracle.models import Tick

# (ticks, t2, start of the window or None) -> (price, the ticks it came from)
RULES: dict[str, Callable[[Sequence[Tick], dt.datetime, dt.datetime | None], tuple[int, list[Tick]]]] = {}


class MissingPrice(Exception):
    """No usable tick for some legs at the fixing time."""

    def __init__(self, legs: Sequence[str], at: dt.datetime) -> None:
        self.legs = list(legs)
        self.at = at
        utc = at.astimezone(dt.UTC)
        shown = utc.strftime("%Y-%m-%d %H:%M:%S.%f" if utc.microsecond else "%Y-%m-%d %H:%M:%S")
        super().__init__(f"no price for {', '.join(self.legs)} at or before {shown} UTC")


class InvalidRule(ValueError):
    pass


@dataclass(frozen=True)
class Fixing:
    prices: dict[str, int]
    ticks: dict[str, list[int]]
    rule: dict
    at: dt.datetime


def rule(name: str):
    def register(fn):
        RULES[name] = fn
        return fn

    return register


@rule("last")
def last_tick(ticks: Sequence[Tick], at: dt.datetime, start: dt.datetime | None) -> tuple[int, list[Tick]]:
    """The last tick at or before the fixing time."""
    chosen = ticks[-1]
    return chosen.price, [chosen]


@rule("median")
def median(ticks: Sequence[Tick], at: dt.datetime, start: dt.datetime | None) -> tuple[int, list[Tick]]:
    """Median of the window's ticks; an even count takes the lower middle (stays an exact tick)."""
    ordered = sorted(ticks, key=lambda t: (t.price, t.id))
    chosen = ordered[(len(ordered) - 1) // 2]
    return chosen.price, list(ticks)


@rule("twap")
def time_weighted(ticks: Sequence[Tick], at: dt.datetime, start: dt.datetime | None) -> tuple[int, list[Tick]]:
    """Time-weighted average over [start, at]: each tick weighted until the next one (or t2); a tick
    before `start` (the price in force when the window opens) counts from `start`. Floored."""
    if len(ticks) == 1:
        return ticks[0].price, list(ticks)
    weighted = 0
    total = 0
    for i, tick in enumerate(ticks):
        begin = max(tick.at, start) if start is not None else tick.at
        end = ticks[i + 1].at if i + 1 < len(ticks) else at
        span = max(0, int((end - begin) / dt.timedelta(microseconds=1)))
        weighted += tick.price * span
        total += span
    if total == 0:
        return ticks[-1].price, list(ticks)
    return weighted // total, list(ticks)


def validate_rule(spec: dict | None) -> dict:
    spec = dict(spec or {"rule": "last"})
    name = spec.get("rule", "last")
    if name not in RULES:
        raise InvalidRule(f"Unknown fixing rule {name!r}: use one of {', '.join(sorted(RULES))}")
    if name == "last":
        return {"rule": "last"}
    window = spec.get("window", 60)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 86400:
        raise InvalidRule("The fixing window must be a whole number of seconds from 1 to 86400")
    return {"rule": name, "window": window}


def take_fixing(session_id: str, legs: Sequence[str], at: dt.datetime, spec: dict) -> Fixing:
    """Prices for every leg at `at` under the rule; raises MissingPrice naming the legs without one."""
    spec = validate_rule(spec)
    fn = RULES[spec["rule"]]
    prices: dict[str, int] = {}
    used: dict[str, list[int]] = {}
    missing = []
    for leg in legs:
        qs = Tick.objects.filter(session_id=session_id, symbol=leg, at__lte=at)
        start = None
        if spec["rule"] == "last":
            last = qs.order_by("-at", "-id").first()
            window = [last] if last else []
        else:
            start = at - dt.timedelta(seconds=spec["window"])
            window = list(qs.filter(at__gt=start).order_by("at", "id"))
            if spec["rule"] == "twap":
                # The price in force when the window opens counts until the first tick inside it.
                before = qs.filter(at__lte=start).order_by("-at", "-id").first()
                if before is not None:
                    window.insert(0, before)
        if not window:
            missing.append(leg)
            continue
        price, ticks = fn(window, at, start)
        prices[leg] = price
        used[leg] = [t.id for t in ticks]
    if missing:
        raise MissingPrice(missing, at)
    return Fixing(prices=prices, ticks=used, rule=spec, at=at)
