"""Fixing methods over observations, pure (no database): the building blocks of pluggable fixings
(issue #32). Each takes the observations of one leg inside its window and either answers a price with the
observations it used, or refuses with the reason an auditor will read ("vwap: volume 0 in the window").
Prices are integers of 10**-6, volumes integers of 10**-6 units; every average is floored to the price
scale, like `twap` in `oracle.fixing`.

- `last`: the last observation at or before the end (ties in time: the later id).
- `median`: the lower median of the window's observations (an even count takes the lower middle, so the
  fixing is a price actually quoted); ties in price: the lower id.
- `twap`: time-weighted over [start, end]: each price counts for as long as it was in force inside the
  window, the one in force when it opens (the last observation at or before `start`) from `start` on.
- `vwap`: the volume-weighted average of the window's observations that carry a volume (CME's tier 1,
  LSE's closing VWAP): sum(p.v) / sum(v), floored; refused without volume, or under `min_volume` /
  `min_ticks`.
- `close`: the last observation at or before the end from one named source (LSE's last trade).
- `median_of_sources`: per source an inner answer, then the median of the sources (the lower middle for
  an even count, so it is a value a source gave), after dropping the sources further than `max_deviation`
  (a fraction) from the first median; refused under `min_sources` (MakerDAO's and Chainlink's quorum).
- `ladder`: tiers tried in order, the first that answers wins; each refusal above it is kept for the record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from operator import itemgetter, mul, sub
from typing import NamedTuple


class Obs(NamedTuple):
    """One price observation: a tick's id, instant, price, volume (None: the source gave none), source.
    A tuple, not a dataclass: a fixing over a long window makes a million of them."""

    id: int
    at: dt.datetime
    price: int
    volume: int | None = None
    source: str = ""


@dataclass(frozen=True)
class Window:
    """Where a windowed method looks: (start, end], the observation in force at `start` counting for
    `twap`; `start` None for the methods that take the last observation at or before `end`."""

    start: dt.datetime | None
    end: dt.datetime

    def inside(self, obs: Sequence[Obs]) -> list[Obs]:
        start, end = self.start, self.end
        if start is None:
            return [o for o in obs if o.at <= end]
        return [o for o in obs if start < o.at <= end]


@dataclass(frozen=True)
class Answer:
    price: int
    used: tuple[int, ...]  # the ids of the observations it came from
    detail: dict = field(default_factory=dict)  # what the record shows beside it (sources, dropped, volume)


_MICROSECOND = dt.timedelta(microseconds=1)
VOLUME_SCALE = 10**6  # volumes are integers of 10**-6 units, like quantities


def show_volume(volume: int) -> str:
    """A volume in units as people write it: 1234.5, 40, 0."""
    whole, frac = divmod(volume, VOLUME_SCALE)
    return f"{whole}.{frac:06d}".rstrip("0").rstrip(".") if frac else str(whole)


def split_factor(at: dt.datetime, cuts: Sequence[tuple[dt.datetime, Fraction]]) -> Fraction:
    """How much the splits whose cut came after `at` multiply a unit: a price stamped then reads divided
    by it at today's level, a volume multiplied (CRSP's adjustment). 1 when none did."""
    factor = Fraction(1)
    for cut, ratio in cuts:
        if at < cut:
            factor *= ratio
    return factor


class Insufficient(Exception):
    """A method cannot answer from these observations; `reason` is what the record says."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def vwap(obs: Sequence[Obs], *, min_volume: int = 0, min_ticks: int = 1) -> Answer:
    """Volume-weighted average price of the observations with a volume, floored to the price scale."""
    traded = [o for o in obs if o.volume]
    volume = sum(o.volume for o in traded)  # type: ignore[misc]
    if not traded:
        raise Insufficient("vwap: volume 0 in the window")
    if len(traded) < min_ticks:
        raise Insufficient(f"vwap: {len(traded)} ticks with volume in the window, {min_ticks} needed")
    if volume < min_volume:
        raise Insufficient(f"vwap: volume {show_volume(volume)} in the window, {show_volume(min_volume)} needed")
    weighted = sum(o.price * o.volume for o in traded)  # type: ignore[operator]
    return Answer(weighted // volume, tuple(o.id for o in traded), {"volume": volume, "ticks": len(traded)})


def last(obs: Sequence[Obs], end: dt.datetime) -> Answer:
    """The last observation at or before `end`; ties in time: the later id."""
    eligible = [o for o in obs if o.at <= end]
    if not eligible:
        raise Insufficient("last: no tick at or before the end of the window")
    chosen = max(eligible, key=lambda o: (o.at, o.id))
    return Answer(chosen.price, (chosen.id,))


def median(obs: Sequence[Obs]) -> Answer:
    """The lower median of the observations by (price, id): always a price that was quoted."""
    if not obs:
        raise Insufficient("median: no tick in the window")
    ordered = sorted(obs, key=lambda o: (o.price, o.id))
    return Answer(ordered[(len(ordered) - 1) // 2].price, tuple(sorted(o.id for o in obs)))


def twap(obs: Sequence[Obs], window: Window) -> Answer:
    """Time-weighted average over [start, end], floored: each observation weighs until the next one (or
    the end); the one in force at `start` (the last at or before it) counts from `start`. A window whose
    prices were in force for no time (a single instant) takes the last price."""
    assert window.start is not None
    when = itemgetter(1, 0)  # (at, id): ties in time go to the later id
    before = [o for o in obs if o.at <= window.start]
    series = sorted(window.inside(obs), key=when)
    if before:
        series.insert(0, max(before, key=when))
    if not series:
        raise Insufficient("twap: no tick in force in the window")
    # Each price is in force from its instant (the window's start for the one before it) to the next one's
    # (the window's end for the last), in whole microseconds; the instants are sorted, so no span is < 0.
    ats = [max(series[0].at, window.start), *(o.at for o in series[1:]), window.end]
    spans = [gap // _MICROSECOND for gap in map(sub, ats[1:], ats)]
    total = sum(spans)
    weighted = sum(map(mul, (o.price for o in series), spans))
    price = weighted // total if total else series[-1].price
    return Answer(price, tuple(o.id for o in series))


def close(obs: Sequence[Obs], end: dt.datetime, *, source: str | None = None) -> Answer:
    """The last observation at or before `end` (from `source` when named); ties in time: the later id."""
    eligible = [o for o in obs if o.at <= end and (source is None or o.source == source)]
    if not eligible:
        where = f" from source {source!r}" if source else ""
        raise Insufficient(f"close: no tick{where} at or before the end of the window")
    chosen = max(eligible, key=lambda o: (o.at, o.id))
    return Answer(chosen.price, (chosen.id,), {"source": chosen.source})


def lower_median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def median_of_sources(
    obs: Sequence[Obs],
    inner: Callable[[Sequence[Obs]], Answer],
    *,
    sources: Sequence[str] | None = None,
    min_sources: int = 1,
    max_deviation: Fraction | None = None,
) -> Answer:
    """Each source's own answer by `inner`, then the lower median of them, after dropping the sources
    further than `max_deviation` from the median of all; needs `min_sources` left."""
    names = list(sources) if sources is not None else sorted({o.source for o in obs})
    answers: dict[str, Answer] = {}
    refused: dict[str, str] = {}
    for name in names:
        try:
            answers[name] = inner([o for o in obs if o.source == name])
        except Insufficient as exc:
            refused[name] = exc.reason
    if not answers:
        raise Insufficient(f"composite: no source answered ({_said(refused)})")
    first = lower_median([a.price for a in answers.values()])
    dropped = {}
    if max_deviation is not None and first > 0:
        for name, a in list(answers.items()):
            if abs(Fraction(a.price - first, first)) > max_deviation:
                dropped[name] = a.price
                del answers[name]
    if len(answers) < min_sources:
        raise Insufficient(
            f"composite: {len(answers)} source(s) answered within the deviation, {min_sources} needed"
            + (f" ({_said(refused)})" if refused else "")
        )
    price = lower_median([a.price for a in answers.values()])
    used = tuple(i for a in answers.values() for i in a.used)
    return Answer(
        price,
        used,
        {"sources": {n: a.price for n, a in answers.items()}, "dropped": dropped, "refused": refused},
    )


def ladder(tiers: Sequence[tuple[str, Callable[[], Answer]]]) -> tuple[Answer, str, Mapping[str, str]]:
    """Try each (name, method) in order; the first answer wins. Returns it, the tier's name, and why each
    tier above it did not answer; refused as a whole when none answers."""
    passed: dict[str, str] = {}
    for name, method in tiers:
        try:
            return method(), name, passed
        except Insufficient as exc:
            passed[name] = exc.reason
    raise Insufficient(f"no tier answered ({'; '.join(passed.values())})")


def _said(reasons: Mapping[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in reasons.items())
