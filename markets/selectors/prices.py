"""A session's prices in one statement: the latest ticks of every leg (and the first since the opening),
however many legs. A floor of 8 legs used to ask 24 questions of the tick table per render.

Each leg's rows come from its own indexed `ORDER BY at DESC LIMIT n` (the `oracle_tick_lookup` index), the
legs joined by UNION ALL (the statement is in `markets.sql`; tested on both engines against the answer
of a query per leg).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from fractions import Fraction

from markets import floor_sql, sql
from markets.models import Session
from oracle import resume
from oracle.fixing_methods import split_factor
from oracle.models import Tick
from oracle.resume import LastTick

WINDOW = 600  # ticks per leg: ten minutes of one a second (the chart's window; the sparkline is its tail)


@dataclass
class PriceHistory:
    """Per leg: its last `WINDOW` ticks (at, price), oldest first, and its first price since the opening."""

    recent: dict[str, list[tuple[dt.datetime, int]]]
    first: dict[str, int]

    def latest(self) -> dict[str, int]:
        """The latest price of every leg that has one."""
        return {leg: rows[-1][1] for leg, rows in self.recent.items() if rows}

    def since(self, at: dt.datetime) -> dict[str, list[tuple[dt.datetime, int]]]:
        """Each leg's window from `at` on: the last WINDOW ticks since `at` (the newest WINDOW overall,
        filtered, are exactly those)."""
        return {leg: [row for row in rows if row[0] >= at] for leg, rows in self.recent.items()}


def price_history(session: Session, *, until: dt.datetime | None = None, window: int = WINDOW) -> PriceHistory:
    """The last `window` ticks of each leg up to `until` (a settled session's history ends at its fixing),
    and each leg's first price since the opening: one statement."""
    since = session.opened_at or session.created_at
    recent: dict[str, list[tuple[dt.datetime, int, int]]] = {leg: [] for leg in session.legs}
    first_price: dict[str, int] = {}
    for k, first, at, tick_id, price in floor_sql.tick_windows(session.id, session.legs, window, since, until):
        leg = session.legs[k]
        if first:
            first_price[leg] = price
        else:
            recent[leg].append((at, tick_id, price))
    splits = splits_of(session)
    if splits:  # a split's earlier ticks on the chart at the level after it, with the first price
        recent = {
            leg: [(at, i, adjust(p, at, splits.get(leg, []))) for at, i, p in rows] for leg, rows in recent.items()
        }
        first_price = {leg: adjust(p, since, splits.get(leg, [])) for leg, p in first_price.items()}
    return PriceHistory(
        {leg: [(at, price) for at, _, price in sorted(rows)] for leg, rows in recent.items()}, first_price
    )


def latest_prices(session: Session) -> dict[str, int]:
    """Latest tick price per leg (base units), in one statement; legs without a tick are absent. After a
    split, a leg whose latest tick is from before the cut reads at the level after it."""
    if session.splits:
        return _level(session, sql.newest_ticks(session.id, session.legs, dt.datetime.max.replace(tzinfo=dt.UTC)))
    return {session.legs[k]: price for k, price in floor_sql.latest_tick_prices(session.id, session.legs)}


def _level(session: Session, rows: dict[str, tuple[int, int]]) -> dict[str, int]:
    """{leg: price} of {leg: (tick id, price)}, each tick from before a split of its leg at the level after
    it (one more read, of those ticks' instants, only where a leg has split)."""
    prices = {leg: price for leg, (_, price) in rows.items()}
    splits = splits_of(session)
    split_legs = [leg for leg in rows if leg in splits]
    if split_legs:
        ats = dict(Tick.objects.filter(id__in=[rows[leg][0] for leg in split_legs]).values_list("id", "at"))
        for leg in split_legs:
            prices[leg] = adjust(prices[leg], ats[rows[leg][0]], splits[leg])
    return prices


def prices_at(session: Session, at: dt.datetime) -> tuple[list[int | None], dict[str, int]]:
    """The oracle's latest price of each leg at or before `at` (None: no tick yet) and the tick ids: what
    the margin rule judges a position at (bounded shorting), read in one statement (`sql.newest_ticks`:
    the commands read it on the trade path)."""
    newest = sql.newest_ticks(session.id, session.legs, at)
    level = _level(session, newest) if session.splits else {leg: p for leg, (_, p) in newest.items()}
    return [level.get(leg) for leg in session.legs], {leg: newest[leg][0] for leg in session.legs if leg in newest}


def newest_ticks(
    session_id: str, legs: list[str], at: dt.datetime | None = None, *, source: str | None = None
) -> dict[str, LastTick]:
    """Each leg's newest stored tick (later time, then later id: the tick the `last` fixing takes), for the
    legs that have one (at or before `at` when given; of the feed `source` when given): where the sim
    oracle resumes it after a restart, and the prices the margin rule reads."""
    return {leg: LastTick(session_id, leg, *row[:3]) for leg, row in _newest_rows(session_id, legs, at, source).items()}


def resume_ticks(session_id: str, legs: list[str], source: str) -> dict[str, LastTick]:
    """Where the feed `source` resumes each leg of a session (`oracle.resume.own_first`): its own newest
    tick, else the newest of any feed (named), for the legs that have one. Two reads at most, when a
    session joins the feed; a split leg's tick from before its cut at the level after it."""
    own = newest_ticks(session_id, legs, source=source)
    missing = [leg for leg in legs if leg not in own]
    others = {
        leg: (LastTick(session_id, leg, *row[:3]), row[3]) for leg, row in _newest_rows(session_id, missing).items()
    }
    placed = resume.own_first(own, others)
    session = Session.objects.only("splits").filter(id=session_id).first()
    splits = splits_of(session) if session is not None else {}
    for leg, tick in placed.items():  # after a split the walk goes on at the level after it
        if leg in splits:
            placed[leg] = replace(tick, price=adjust(tick.price, tick.at, splits[leg]))
    return placed


def _newest_rows(
    session_id: str, legs: list[str], at: dt.datetime | None = None, source: str | None = None
) -> dict[str, tuple]:
    """{leg: (id, at, price, source)} of each leg's newest tick, for the legs that have one."""
    newest = {}
    for leg in legs:
        ticks = Tick.objects.filter(session_id=session_id, symbol=leg)
        if at is not None:
            ticks = ticks.filter(at__lte=at)
        if source is not None:
            ticks = ticks.filter(source=source)
        row = ticks.order_by("-at", "-id").values_list("id", "at", "price", "source").first()
        if row is not None:
            newest[leg] = row
    return newest


def splits_of(session: Session) -> dict[str, list[tuple[dt.datetime, Fraction]]]:
    """Each leg's applied splits (cut, ratio), oldest first, from the session row (no extra read)."""
    return {
        leg: [(dt.datetime.fromisoformat(cut), Fraction(ratio)) for cut, ratio in rows]
        for leg, rows in (session.splits or {}).items()
    }


def adjust(price: int, at: dt.datetime, cuts: list[tuple[dt.datetime, Fraction]]) -> int:
    """A tick's price at the level after every split whose cut (effective_at) came after it (floored to the price unit)."""
    factor = split_factor(at, cuts)
    return price if factor == 1 else int(price / factor)
