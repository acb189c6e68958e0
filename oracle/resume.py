"""Where the sim oracle starts each leg: the pure rule (no Django, no database) and the lines that say it.

A stopped oracle (Ctrl-C, SIGTERM, SIGKILL, a demo restart) leaves its ticks behind. Started again, it
continues every leg of every session it prices from that session's newest stored tick of that leg, the
exact integer price, not from the configured start:

- A symbol's walk (one per symbol, shared by every session with a leg of that name) starts at the
  `--start` price when the flag names the symbol (or is bare); else at the newest stored tick of that
  symbol (by time, then id) among the sessions joining the walk; else at the config's start (no tick yet).
- A session's leg follows its symbol's walk when `--start` names it, when the session has no tick of it
  yet, or when its newest tick is exactly the price the walk starts from (sessions priced together stay
  together). Otherwise it continues on a line of its own from its own newest tick, moved by the same
  shocks as the walk (the same returns, its own level).

Several feeds may price one session at once (`run_oracle --source a` and `--source b`): a session's
"newest tick" of a leg is then the feed's own (`own_first`), so feeds resumed together keep their own
levels and do not take each other's prices; a leg the feed has no tick of yet starts from the newest
tick of any feed (a feed joining others starts where the market is), and the line says whose it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from oracle.sources import price_text
from oracle.units import name_key

SHOWN = 8  # sessions named on one line; the rest are counted


@dataclass(frozen=True)
class LastTick:
    """A leg's newest stored tick in one session."""

    session_id: str
    leg: str
    tick_id: int
    at: dt.datetime
    price: int  # base units of 10**-6
    feed: str | None = None  # another feed's tick (this feed had none of the leg): that feed's name


@dataclass(frozen=True)
class Origin:
    """Where a walk or a line starts: a price, and the tick it continues from (None: the flag or the config)."""

    price: int
    tick: LastTick | None = None
    flagged: bool = False

    def text(self) -> str:
        if self.tick is not None:
            at = self.tick.at.astimezone(dt.UTC)
            shown = at.strftime("%Y-%m-%d %H:%M:%S.%f" if at.microsecond else "%Y-%m-%d %H:%M:%S")
            feed = f", feed {self.tick.feed}" if self.tick.feed is not None else ""
            return f"from tick {self.tick.tick_id} of {self.tick.session_id} ({shown} UTC{feed})"
        return "from --start" if self.flagged else "from the config (no tick yet)"


def own_first(own: Mapping[str, LastTick], others: Mapping[str, tuple[LastTick, str]]) -> dict[str, LastTick]:
    """A session's newest tick per leg for one feed: the feed's own (`own`), else the newest of any feed
    (`others`: {leg: (tick, its source)}), marked with that feed's name."""
    chosen = dict(own)
    for leg, (tick, source) in others.items():
        if leg not in chosen:
            chosen[leg] = replace(tick, feed=source)
    return chosen


def resumable(tick: LastTick | None) -> LastTick | None:
    """A stored tick a walk can continue from: a positive price (the walk is geometric)."""
    return tick if tick is not None and tick.price > 0 else None


def walk_start(configured: int, flagged: bool, ticks: Iterable[LastTick | None]) -> Origin:
    """Where a symbol's walk starts: the `--start` price (`configured` holds it) when the flag names the
    symbol; else its newest stored tick among `ticks` (later time, then later id); else the config."""
    if flagged:
        return Origin(configured, flagged=True)
    newest = max(filter(None, map(resumable, ticks)), key=lambda t: (t.at, t.tick_id), default=None)
    return Origin(newest.price, newest) if newest is not None else Origin(configured)


def leg_resume(own: LastTick | None, flagged: bool, walk_price: int | None) -> LastTick | None:
    """The tick a session's leg continues from on a line of its own, or None: it follows its symbol's walk
    (`--start` names it, it has no tick yet, or its newest price is the one the walk starts from;
    `walk_price` is None when the walk is already under way)."""
    own = resumable(own)
    if flagged or own is None or own.price == walk_price:
        return None
    return own


@dataclass
class Placement:
    """Sessions placed on the walk: where the walks starting now start, the lines of their own, each leg's
    feed key (its symbol, or a line `SYMBOL (session)`), and what to tell the organiser."""

    walks: dict[str, Origin] = field(default_factory=dict)  # symbol -> its start (symbols starting now)
    lines: dict[str, tuple[str, int]] = field(default_factory=dict)  # line key -> (symbol, start price)
    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # session -> {leg: feed key}
    said: list[str] = field(default_factory=list)


def place(
    sessions: Mapping[str, Sequence[str]],
    last: Mapping[str, Mapping[str, LastTick]],
    symbols: Sequence[str],
    started: Collection[str],
    configured: Callable[[str], int],
    flagged: Callable[[str], bool],
) -> Placement:
    """Place `sessions` ({session: legs}, joining now) on the walk of `symbols` (every walked symbol, in
    the walk's order; legs match them by name key). `last`: each joining session's newest tick per leg;
    `started`: name keys of the symbols whose walk is under way (the others start now: `walk_start`);
    `configured(symbol)`: the config's start (with --start); `flagged(symbol)`: --start names it."""
    symbol_of = {name_key(symbol): symbol for symbol in symbols}
    placed = Placement()
    for legs in sessions.values():
        for symbol in (symbol_of[name_key(leg)] for leg in legs):
            if name_key(symbol) not in started and symbol not in placed.walks:
                ticks = [t for s in sessions for lg, t in last.get(s, {}).items() if name_key(lg) == name_key(symbol)]
                placed.walks[symbol] = walk_start(configured(symbol), flagged(symbol), ticks)
    told: dict[tuple[str, str], tuple[Origin, list[str], list[str]]] = {}
    for sid, legs in sessions.items():
        keys = placed.keys[sid] = {}
        for leg in legs:
            symbol = symbol_of[name_key(leg)]
            walk, own = placed.walks.get(symbol), last.get(sid, {}).get(leg)
            tick = leg_resume(own, flagged(symbol), walk.price if walk else None)
            if tick is None:
                keys[leg] = symbol
                if walk is not None:  # a walk under way is joined where it is, silently (as ever)
                    fresh = resumable(own) is None and walk.tick is not None
                    told.setdefault((symbol, symbol), (walk, [], []))[2 if fresh else 1].append(sid)
            else:
                keys[leg] = f"{symbol} ({sid})"
                placed.lines[keys[leg]] = (symbol, tick.price)
                told[(symbol, keys[leg])] = (Origin(tick.price, tick), [sid], [])
    order = {symbol: i for i, symbol in enumerate(symbols)}  # by symbol, its walk before its lines
    for symbol, key in sorted(told, key=lambda sk: (order[sk[0]], sk[1] != sk[0], sk[1])):
        placed.said.append(describe(symbol, *told[(symbol, key)]))
    return placed


def describe(symbol: str, origin: Origin, resumed: Sequence[str], fresh: Sequence[str] = ()) -> str:
    """One line for the organiser: `resume GOLD at 94.33 from tick 812 of demo (...) for demo, s2`.
    `resumed`: the sessions that continue from a tick of their own at this price (or from the flag or the
    config); `fresh`: the sessions without a tick of the leg yet that join the same walk."""
    verb = "resume" if origin.tick is not None else "start"
    parts = [_names(resumed)] if resumed else []
    if fresh:
        parts.append(f"no tick yet: {_names(fresh)}" if origin.tick is not None else _names(fresh))
    return f"{verb} {symbol} at {price_text(origin.price)} {origin.text()} for {'; '.join(parts)}"


def _names(sessions: Sequence[str]) -> str:
    more = f" and {len(sessions) - SHOWN} more" if len(sessions) > SHOWN else ""
    return ", ".join(sessions[:SHOWN]) + more
