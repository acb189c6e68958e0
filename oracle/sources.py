"""Price sources for the oracle, free of Django: a correlated random walk and a CSV replay.

Both yield prices as exact integers in base units of 10**-6 (PRICE_DP), keyed by symbol. Floats live
only inside the random walk; every price leaves this module through `to_base_units` (Decimal).

- `SimSource(legs, config, seed, tick_seconds)` (config: `oracle.simconfig`): geometric Brownian motion per leg, correlated through
  the Cholesky factor of the configured correlation matrix, driven by `np.random.default_rng(seed)`.
  One step is `dt = tick_seconds * time_scale / (252 * 6.5 * 3600)` years (a trading year of 252 days
  of 6.5 hours; `time_scale` > 1 makes a demo livelier: 60 means one real second is one market minute).
  Prices are rounded to the config's `tick_size` (default one base unit, 0.000001; the demo uses 0.01).
- `load_replay_csv(path, legs)`: reads and validates a whole `ts,AAPL,NVDA,...` file (with optional
  `AAPL:volume` columns), raising `ReplayError("FILE:LINE:COLUMN: ...")` at the first problem.
- `replay_delays(timestamps, speed=None, tick_ms=None)`: seconds to wait before each row.
- `sim_feed` / `replay_feed`: endless or finite iterators of (delay_seconds, prices) for the runner.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
from collections.abc import Iterator, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import NamedTuple

import numpy as np

from oracle import units
from oracle.simconfig import ConfigError, LegParams, SimConfig, cholesky, load_config, parse_price_text
from oracle.units import MAX_PRICE, PRICE_DP, PRICE_SCALE, QTY_DP, name_key

# The config (oracle.simconfig) is read through this module too: `sources.load_config(...)`.
__all__ = [
    "ConfigError",
    "LegParams",
    "ReplayError",
    "Row",
    "SimConfig",
    "SimSource",
    "cholesky",
    "load_config",
    "load_replay_csv",
    "parse_price_text",
    "price_text",
    "replay_delays",
    "replay_feed",
    "sim_feed",
    "to_base_units",
]

TRADING_YEAR_SECONDS = 252 * 6.5 * 3600
MIN_PRICE_UNITS = 1  # one base unit: 0.000001
MAX_PRICE_UNITS = MAX_PRICE * PRICE_SCALE
_LOG_MIN = math.log(MIN_PRICE_UNITS / PRICE_SCALE)
_LOG_MAX = math.log(MAX_PRICE)
_EXACT = Context(prec=80)
VOLUME_SUFFIX = ":volume"  # `AAPL:volume` beside `AAPL`: a leg's name never holds a colon
MAX_VOLUME = 10**12  # units in one row (10**18 base units of 10**-6: inside a BigInteger)


class ReplayError(ValueError):
    """A replay file that cannot be used; the message reads `FILE:LINE:COLUMN: what is wrong`."""


# ---------------------------------------------------------------- exact prices


def to_base_units(price: float, tick_units: int = 1) -> int:
    """A float price from the walk as integer base units, rounded half even to a multiple of `tick_units`
    and clamped to [one tick, MAX_PRICE]: exact Decimal arithmetic from the float's binary value."""
    if not math.isfinite(price):
        raise ValueError(f"price {price!r} is not finite")
    ticks = _EXACT.divide(_EXACT.multiply(Decimal(price), Decimal(PRICE_SCALE)), Decimal(tick_units))
    units = int(ticks.to_integral_value(ROUND_HALF_EVEN)) * tick_units
    return min(max(units, tick_units), MAX_PRICE_UNITS - MAX_PRICE_UNITS % tick_units)


def price_text(base: int) -> str:
    """Base units as a decimal string with two to six places (for progress lines)."""
    text = str(Decimal(base).scaleb(-PRICE_DP, _EXACT))
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


# ---------------------------------------------------------------- the random walk


class SimSource:
    """Correlated geometric random walk over `legs`; iterate it for one price vector per tick.

    The first vector is the configured start prices exactly (or the prices `set_start` gave: where a restart
    resumes); each later one is one GBM step:
    log S += (mu - sigma**2 / 2) dt + sigma sqrt(dt) (L z), z ~ N(0, I), L L^T = correlation.
    The log price is held inside [1e-6, MAX_PRICE], so prices stay positive and storable.
    A `line` is a further price of a walked symbol at a level of its own: it shows its start exactly, then
    moves by the symbol's own steps (a session continuing from its own last price). Lines draw no random
    numbers: the same seed and the same starting points give the same ticks.
    """

    def __init__(self, legs: Sequence[str], config: SimConfig, seed: int, tick_seconds: float) -> None:
        if tick_seconds <= 0:
            raise ValueError("tick_seconds must be positive")
        self.config = config
        self.seed = seed
        self.dt = tick_seconds * config.time_scale / TRADING_YEAR_SECONDS
        self.rng = np.random.default_rng(seed)
        self.legs: list[str] = []
        self._log = np.empty(0)
        self._started = False
        self._exact_start: dict[str, int] = {}  # shown exactly on the next vector, the walk continuing from it
        self._lines: dict[str, tuple[int, float]] = {}  # key -> (its symbol's index, log offset from it)
        self._line_starts: dict[str, tuple[int, int]] = {}  # key -> (index, exact price) for the next vector
        self.extend(legs)

    def extend(self, legs: Sequence[str]) -> list[str]:
        """Add legs not yet walked (they start at their configured price). Returns the new ones."""
        walked = {name_key(leg) for leg in self.legs}
        new = list({name_key(leg): leg for leg in reversed(legs) if name_key(leg) not in walked}.values())[::-1]
        if not new:
            return []
        params = [self.config.params(leg) for leg in new]
        all_legs = self.legs + new
        chol = cholesky(self.config.correlation(all_legs), all_legs)
        self.legs = all_legs
        starts = np.array([math.log(p.start / PRICE_SCALE) for p in params])
        self._log = np.concatenate([self._log, starts])
        every = [self.config.params(leg) for leg in all_legs]
        self._sigma = np.array([p.vol for p in every])
        self._mu = np.array([p.drift for p in every])
        self._chol = chol
        self._exact_start.update({leg: p.start for leg, p in zip(new, params, strict=True)})
        return new

    def _index(self, symbol: str) -> int:
        key = name_key(symbol)
        for i, leg in enumerate(self.legs):
            if name_key(leg) == key:
                return i
        raise KeyError(f"{symbol} is not walked")

    def set_start(self, symbol: str, price: int) -> None:
        """The walked `symbol` shows `price` (base units, > 0) exactly on the next vector and walks on from it."""
        if price <= 0:
            raise ValueError(f"{symbol}: a start price must be positive, not {price}")
        self._exact_start[self.legs[self._index(symbol)]] = price

    def line(self, key: str, symbol: str, price: int) -> None:
        """Price `key` too: `price` (> 0) exactly on the next vector, then moved by `symbol`'s steps."""
        if price <= 0:
            raise ValueError(f"{key}: a start price must be positive, not {price}")
        self._lines.pop(key, None)
        self._line_starts[key] = (self._index(symbol), price)

    def keep_lines(self, keys: set[str]) -> None:
        """Stop pricing the lines not in `keys` (their sessions are settled)."""
        for table in (self._lines, self._line_starts):
            for key in set(table) - keys:
                del table[key]

    def __iter__(self) -> Iterator[dict[str, int]]:
        return self

    def __next__(self) -> dict[str, int]:
        if self._started:
            self._step()
        self._started = True
        index = {leg: i for i, leg in enumerate(self.legs)}
        for leg, start in self._exact_start.items():  # the walk goes on from the exact start, not a step past it
            self._log[index[leg]] = math.log(start / PRICE_SCALE)
        tick = self.config.tick_size
        prices = {leg: to_base_units(math.exp(x), tick) for leg, x in zip(self.legs, self._log, strict=True)}
        prices.update(self._exact_start)  # legs just added or restarted show their start exactly
        self._exact_start = {}
        for key, (i, offset) in self._lines.items():
            prices[key] = to_base_units(math.exp(self._log[i] + offset), tick)
        for key, (i, start) in self._line_starts.items():
            self._lines[key] = (i, math.log(start / PRICE_SCALE) - float(self._log[i]))
            prices[key] = start
        self._line_starts = {}
        return prices

    def _step(self) -> None:
        z = self.rng.standard_normal(len(self.legs))
        shock = self._chol @ z
        drift = (self._mu - 0.5 * self._sigma**2) * self.dt
        self._log = np.clip(self._log + drift + self._sigma * math.sqrt(self.dt) * shock, _LOG_MIN, _LOG_MAX)


# ---------------------------------------------------------------- replay


class Row(NamedTuple):
    """One replay row: its instant, {column: price in base units}, and {column: volume in 10**-6 units}
    for the volume cells it fills (None: the file has no volume column)."""

    at: dt.datetime
    prices: dict[str, int]
    volumes: dict[str, int] | None = None


def load_replay_csv(path: str | Path, legs: Sequence[str] = ()) -> list[Row]:
    """Read and validate the whole file: header `ts,SYM1,SYM2,...`, one row per instant.

    A column `SYM:volume` beside `SYM` gives its volume in units (up to 6 decimals, not negative; an
    empty cell: no volume in that row). Every price and volume is checked, timestamps must be ISO 8601 and strictly increasing (naive ones are
    UTC); `legs` must each have a column (matched by name, ignoring case and spacing: `GOLD 3m` finds a
    column `gold 3M`). Returns a Row (timestamp, {column name: base units}, volumes) per row, every column.
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ReplayError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ReplayError(
            f"{name}:{line}:{column}: not UTF-8 text ({exc.reason}: byte 0x{data[exc.start]:02x})"
        ) from None
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise ReplayError(f"{name}:1:1: the file is empty: expected a header like ts,{','.join(legs) or 'AAPL'}")
        header_line = reader.line_num
        symbols, volume_of = _read_header(name, header_line, header, legs)
        rows: list[Row] = []
        previous: dt.datetime | None = None
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            line = reader.line_num
            if len(record) > len(header):
                raise ReplayError(
                    f"{name}:{line}:{len(header) + 1}: unexpected extra field (the header has {len(header)} columns)"
                )
            if len(record) < len(header):
                missing = header[len(record)].strip()
                raise ReplayError(f"{name}:{line}:{len(record) + 1}: missing value for {missing}")
            at = _parse_ts(name, line, record[0])
            if previous is not None and at <= previous:
                raise ReplayError(
                    f"{name}:{line}:1: timestamp {record[0].strip()} is out of order "
                    f"(not after the previous row's {previous.isoformat()})"
                )
            previous = at
            prices = {}
            for col, symbol in symbols.items():
                try:
                    prices[symbol] = parse_price_text(record[col - 1])
                except ValueError as exc:
                    raise ReplayError(f"{name}:{line}:{col}: {symbol}: {exc}") from None
            volumes = _read_volumes(name, line, record, volume_of) if volume_of else None
            rows.append(Row(at, prices, volumes))
    except csv.Error as exc:
        raise ReplayError(f"{name}:{reader.line_num}:1: malformed CSV: {exc}") from None
    if not rows:
        raise ReplayError(f"{name}:{header_line + 1}:1: no price rows after the header")
    return rows


def _read_header(name: str, line: int, header: list[str], legs: Sequence[str]) -> tuple[dict[int, str], dict[int, str]]:
    """({column number: price symbol}, {column number: the symbol whose volume it holds})."""
    first = header[0].strip().lower()
    if first not in ("ts", "timestamp"):
        raise ReplayError(f"{name}:{line}:1: the first column must be 'ts' (ISO timestamps), not {header[0][:20]!r}")
    symbols: dict[int, str] = {}
    volumes: dict[int, str] = {}  # column -> the volume column's own name, matched to its price column below
    for col, cell in enumerate(header[1:], start=2):
        problem = units.leg_text_problem(cell)
        if problem is not None:  # a look-alike or a Unicode space is never folded into a leg's name
            raise ReplayError(f"{name}:{line}:{col}: column {cell.strip(' ')[:30]!r} {problem}")
        symbol = units.tidy_name(cell)
        if not symbol:
            raise ReplayError(f"{name}:{line}:{col}: empty column name")
        seen = [*symbols.values(), *volumes.values()]
        if name_key(symbol) in {name_key(s) for s in seen}:
            raise ReplayError(f"{name}:{line}:{col}: column {symbol} appears twice (names are matched ignoring case)")
        if symbol.lower().endswith(VOLUME_SUFFIX):
            volumes[col] = symbol
        else:
            symbols[col] = symbol
    by_key = {name_key(s): s for s in symbols.values()}
    volume_of: dict[int, str] = {}
    for col, column in volumes.items():
        base = units.tidy_name(column[: -len(VOLUME_SUFFIX)])
        if name_key(base) not in by_key:
            raise ReplayError(
                f"{name}:{line}:{col}: volume column {column} has no price column {base or '(empty)'} beside it"
            )
        volume_of[col] = by_key[name_key(base)]
    missing = [leg for leg in legs if name_key(leg) not in by_key]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise ReplayError(
            f"{name}:{line}:{len(header) + 1}: no column for leg{plural} {', '.join(missing)} "
            f"(the header has {', '.join(symbols.values()) or 'no price columns'})"
        )
    return symbols, volume_of


def _read_volumes(name: str, line: int, record: list[str], volume_of: dict[int, str]) -> dict[str, int]:
    """{symbol: volume in 10**-6 units} for the row's filled volume cells."""
    volumes = {}
    for col, symbol in volume_of.items():
        text = record[col - 1]
        if not text.strip(" \t"):
            continue  # no volume for this symbol in this row
        try:
            volumes[symbol] = units.parse_fixed(text, dp=QTY_DP, what="volume", max_value=MAX_VOLUME, allow_zero=True)
        except units.InvalidNumber as exc:
            raise ReplayError(f"{name}:{line}:{col}: {symbol}: {exc.message}") from None
    return volumes


def _parse_ts(name: str, line: int, cell: str) -> dt.datetime:
    text = cell.strip()
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(f"{name}:{line}:1: timestamp {text[:40]!r} is not an ISO 8601 date-time") from None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def replay_delays(
    timestamps: Sequence[dt.datetime], speed: float | None = None, tick_ms: float | None = None
) -> list[float]:
    """Seconds to wait before each row: 0 for the first, then the file's own gap / speed, or tick_ms."""
    if (speed is None) == (tick_ms is None):
        raise ValueError("give exactly one of speed or tick_ms")
    if speed is not None and not speed > 0:
        raise ValueError("speed must be positive")
    if tick_ms is not None and not tick_ms > 0:
        raise ValueError("tick_ms must be positive")
    delays = [0.0] if timestamps else []
    for before, after in itertools.pairwise(timestamps):
        if speed is not None:
            delays.append((after - before).total_seconds() / speed)
        else:
            delays.append(tick_ms / 1000)
    return delays


def replay_feed(
    rows: Sequence[Row], delays: Sequence[float], loop: bool = False, volumes: bool = False
) -> Iterator[tuple]:
    """(delay, prices) for each row (with `volumes`: (delay, prices, {symbol: volume}) ); with `loop`,
    start again after the last row, waiting the first gap of the file (or, for a one-row file, the same
    pace) before row one comes again."""
    if not rows:
        return
    restart_gap = delays[1] if len(delays) > 1 else 1.0
    first_pass = True
    while True:
        for i, row in enumerate(rows):
            delay = delays[i] if (i or first_pass) else restart_gap
            if volumes:
                yield delay, dict(row[1]), dict((row[2] if len(row) > 2 else None) or {})
            else:
                yield delay, dict(row[1])
        if not loop:
            return
        first_pass = False


def sim_feed(source: SimSource, tick_seconds: float) -> Iterator[tuple[float, dict]]:
    """(delay, prices) forever: the first vector at once, then one every tick."""
    first = True
    for prices in source:
        yield (0.0 if first else tick_seconds), prices
        first = False
