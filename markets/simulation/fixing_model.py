"""Fixings in the reference model (`manage.py simulate --fixing RULE`): the rules the simulator may settle a
session by, and each leg's fixing computed again from the ticks the simulator stored itself (its own tape,
not the database), by code written apart from `oracle.fixing_methods`: exact fractions, floored once.

The simulator checks that the settlement used these prices and that the record names the tier that
answered; `verify_ledger` (run at the end) redoes the record from the ticks. The fixing burst stores ticks
inside the window (some without volume, so a VWAP tier may fail; with `composite`, three sources, one of
them sometimes far off, so it is dropped).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction

WINDOW = 60  # seconds before the fixing the windowed rules look at
MIN_VOLUME = 5 * 10**6  # the fallback's VWAP tier needs 5 units traded
SOURCES = ("sim-a", "sim-b", "sim-c")  # the composite's feeds (the burst's; the run's ticks are sim:<seed>)
DEVIATION = Fraction(5, 100)

RULES: dict[str, dict] = {
    "last": {"rule": "last"},
    "median": {"rule": "median", "window": WINDOW},
    "twap": {"rule": "twap", "window": WINDOW},
    "vwap": {"rule": "vwap", "window": WINDOW},
    "fallback": {
        "rule": "fallback",
        "tiers": [
            {"rule": "vwap", "window": WINDOW, "min_volume": str(MIN_VOLUME // 10**6)},
            {"rule": "twap", "window": WINDOW},
            {"rule": "last"},
        ],
    },
    "composite": {
        "rule": "composite",
        "inner": {"rule": "median", "window": WINDOW},
        "sources": list(SOURCES),
        "min_sources": 2,
        "max_deviation": "0.05",
    },
}


@dataclass(frozen=True)
class Tape:
    """One stored tick as the simulator remembers it; `n` is its order of storage (the tie-breaker an id is)."""

    n: int
    leg: str
    at: dt.datetime
    price: int
    volume: int | None
    source: str


def expected(rule: str, tape: list[Tape], leg: str, t2: dt.datetime) -> tuple[int | None, int | None]:
    """(the fixing, the tier that answers) for `leg` at `t2`, or (None, None) when none can."""
    mine = [t for t in tape if t.leg == leg and t.at <= t2]
    spec = RULES[rule]
    tiers = spec["tiers"] if spec["rule"] == "fallback" else [spec]
    for i, tier in enumerate(tiers):
        value = _tier(tier, mine, t2)
        if value is not None:
            return value, i
    return None, None


def _tier(spec: dict, ticks: list[Tape], t2: dt.datetime) -> int | None:
    name = spec["rule"]
    if name == "composite":
        by_source = {}
        for source in spec["sources"]:
            value = _tier(spec["inner"], [t for t in ticks if t.source == source], t2)
            if value is not None:
                by_source[source] = value
        if not by_source:
            return None
        centre = _lower_middle(list(by_source.values()))
        kept = [v for v in by_source.values() if abs(Fraction(v - centre, centre)) <= DEVIATION]
        return _lower_middle(kept) if len(kept) >= spec["min_sources"] else None
    if name == "last":
        return max(ticks, key=lambda t: (t.at, t.n)).price if ticks else None
    start = t2 - dt.timedelta(seconds=spec["window"])
    inside = [t for t in ticks if t.at > start]
    if name == "median":
        ordered = sorted(inside, key=lambda t: (t.price, t.n))
        return ordered[(len(ordered) - 1) // 2].price if ordered else None
    if name == "vwap":
        traded = [t for t in inside if t.volume]
        volume = sum(t.volume for t in traded)
        if not traded or volume < int(spec.get("min_volume", "0")) * 10**6:
            return None
        return int(Fraction(sum(t.price * t.volume for t in traded), volume))  # int() of a positive: floored
    return _twap(ticks, start, t2)


def _twap(ticks: list[Tape], start: dt.datetime, t2: dt.datetime) -> int | None:
    """Each price weighted by the microseconds it was in force inside [start, t2]."""
    ordered = sorted(ticks, key=lambda t: (t.at, t.n))
    in_force = [t for t in ordered if t.at <= start][-1:]
    series = in_force + [t for t in ordered if t.at > start]
    if not series:
        return None
    area, span = 0, 0
    for k, tick in enumerate(series):
        begin = max(tick.at, start)
        until = series[k + 1].at if k + 1 < len(series) else t2
        micros = max(0, (until - begin) // dt.timedelta(microseconds=1))
        area += tick.price * micros
        span += micros
    return int(Fraction(area, span)) if span else series[-1].price


def _lower_middle(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]
