"""The oracle's loop: paces a price feed, stores each tick, and runs a scheduler step now and then.

One iteration = wait for the tick's time -> store one Tick per (session, leg) in one short transaction,
named by the feed's source and carrying the volume the feed gave (None: it gave none) -> at most once per second: the `schedule` callback (the market's: open at t1, close and settle at t2)
-> progress. The oracle knows nothing of the market: which sessions to price (and their legs) and what
to do on a scheduler step come in as callbacks, from the command that starts it (`manage.py run_oracle`,
in markets).

Time is injectable: `sleep` and `monotonic` pace the loop, `now` stamps the ticks (the wall clock unless
the command passes its own), so tests drive it with a fake clock and never sleep for real.

Several runners may feed one session at once, each under its own source name (`run_oracle --source`):
each stores its own ticks, resumes from its own (`oracle.resume`), and runs the same scheduler step,
whose commands lock the session and check its state again, so a session settles once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from django.db import OperationalError, transaction

from oracle import resume
from oracle.models import Tick
from oracle.resume import LastTick
from oracle.sources import SimSource, price_text
from oracle.units import name_key

MAX_SOURCE = 64  # characters of a source name (Tick.source)
SCHEDULE_EVERY = 1.0  # seconds between scheduler passes (at most)
MAX_SLEEP_SLICE = 0.1  # the default sleep wakes this often to notice a stop request
WRITE_ATTEMPTS = 3


def source_problem(name: str) -> str | None:
    """Why `name` cannot name a feed (`run_oracle --source`), or None. A fixing rule names sources
    exactly (`{"rule": "close", "source": "lse"}`), so the name is kept as written: 1 to 64 printable
    characters, no space at either end."""
    if not 1 <= len(name) <= MAX_SOURCE:
        return f"a source name has 1 to {MAX_SOURCE} characters, not {len(name)}"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return f"a source name is printable text: it holds {bad!r} (U+{ord(bad):04X})"
    if name != name.strip():
        return "a source name has no space at either end (fixing rules name it exactly)"
    return None


@dataclass
class Summary:
    ticks: int
    prices: int
    seconds: float
    reason: str
    skipped: int = 0

    @property
    def rate(self) -> float:
        """Ticks per second, counted from the first tick (sent at once)."""
        return (self.ticks - 1) / self.seconds if self.ticks > 1 and self.seconds > 0 else 0.0

    def line(self) -> str:
        dropped = f", {self.skipped} ticks not stored (database busy)" if self.skipped else ""
        return (
            f"oracle stopped ({self.reason}): {self.ticks} ticks, {self.prices} prices stored "
            f"in {self.seconds:.1f}s ({self.rate:.1f} ticks/s){dropped}"
        )


class Runner:
    """Drive `feed` into Tick rows for the target sessions: (delay_seconds, {symbol: price}) or (delay,
    prices, {symbol: volume} | None), prices and volumes in base units of 10**-6, every row named `source_label`.

    `sessions(session_ids)` gives {session id: its legs} for the sessions to price now: `session_ids` None
    means every session still to price (re-read each scheduler pass, so new sessions join); a list names
    the sessions, and the run ends once none of them is left to price. `schedule()` runs a scheduler
    step and returns (session, outcome) pairs (None: no scheduler).
    With a `sim` source, legs of sessions that join later are added to the walk, and every leg starts where
    `oracle.resume` says: from the session's newest stored tick (`last_ticks(session, legs)`: the command
    gives this feed's own newest, or another feed's where it has none), unless
    `start_flags` (name keys, or "*" for every leg: `--start`) name it. Otherwise sessions with a leg the
    feed does not price are skipped with a warning.
    """

    def __init__(
        self,
        *,
        feed: Iterable[tuple[float, dict[str, int]] | tuple[float, dict[str, int], dict[str, int] | None]],
        source_label: str,
        session_ids: Sequence[str] | None,
        sessions: Callable[[list[str] | None], dict[str, list[str]]],
        schedule: Callable[[], list[tuple[str, str]]] | None = None,
        due_first: Callable[[], bool] | None = None,
        on_start: Callable[[], None] | None = None,
        symbols: Iterable[str] = (),
        sim: SimSource | None = None,
        last_ticks: Callable[[str, list[str]], Mapping[str, LastTick]] | None = None,
        start_flags: Collection[str] = (),
        out: Callable[[str], None] = print,
        progress: Callable[[str], None] | None = None,
        progress_every: float = 1.0,
        max_ticks: int | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], object] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.feed: Iterator = iter(feed)
        self.source_label = source_label[:64]
        self.session_ids = list(session_ids) if session_ids is not None else None
        self.symbols = set(symbols)
        self.sim = sim
        self.last_ticks = last_ticks
        self.start_flags = {name_key(flag) if flag != "*" else flag for flag in start_flags}
        self.out = out
        self.progress = progress
        self.progress_every = progress_every
        self.max_ticks = max_ticks
        self.sleep = sleep or self._interruptible_sleep
        self.monotonic = monotonic
        self.now = now
        self.sessions = sessions
        self.schedule = schedule
        # Whether something the scheduler does must come before the next tick (a corporate action whose
        # cut has come: the tick after it must be at the new price level): then its step runs first.
        self.due_first = due_first
        self.on_start = on_start
        self.stop_reason: str | None = None
        self.targets: dict[str, dict[str, str]] = {}  # session -> {leg: the feed's symbol (or line) for it}
        self._joined: dict[str, dict[str, str]] = {}  # sim: the sessions placed on the walk, their legs' keys
        self._placed: set[str] = set()  # sim: the symbols (name keys) whose walk has started
        self.ticks = 0
        self.prices_stored = 0
        self.skipped = 0
        self.latest: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        self._outcomes: dict[str, str] = {}
        self._last_schedule: float | None = None
        self._last_progress: float | None = None
        self._started: float | None = None

    # ------------------------------------------------------------ control

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _interruptible_sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.stop_reason is None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, MAX_SLEEP_SLICE))

    # ------------------------------------------------------------ the loop

    def run(self) -> Summary:
        if self.on_start is not None:  # e.g. a replay's corporate actions, placed on its clock from now
            self.on_start()
        started = self._started = self.monotonic()
        due = started
        self.refresh_targets()
        while self.stop_reason is None:
            try:
                delay, prices, *more = next(self.feed)
            except StopIteration:
                self.request_stop("end of the replay file")
                break
            due += delay
            wait = due - self.monotonic()
            if wait > 0:
                self.sleep(wait)
            elif wait < -max(delay, SCHEDULE_EVERY):
                due = self.monotonic()  # far behind (a slow write): keep the pace, skip the burst
            if self.stop_reason is not None:
                break
            if self.due_first is not None and self.due_first():
                self.scheduler_step(force=True)
            self.store_tick(prices, more[0] if more else None)
            self.scheduler_step()
            self.report_progress()
            if self.max_ticks is not None and self.ticks >= self.max_ticks:
                self.request_stop(f"--max-ticks {self.max_ticks} reached")
            elif self.session_ids is not None and not self.targets:
                self.request_stop("all sessions settled")
        return Summary(self.ticks, self.prices_stored, self.monotonic() - started, self.stop_reason or "", self.skipped)

    def refresh_targets(self) -> dict[str, dict[str, str]]:
        """Sessions to tick (from `sessions`), each with every leg priced by the feed (legs are matched to
        the feed's symbols by name, ignoring case and spacing); the others are named once and skipped."""
        wanted = dict(sorted(self.sessions(self.session_ids).items()))
        if self.sim is not None:
            self._join(wanted)
            self.targets = {sid: self._joined[sid] for sid in wanted}
            return self.targets
        targets = {}
        for sid, legs in wanted.items():
            by_key = {name_key(symbol): symbol for symbol in self.symbols}
            mapping = {leg: by_key.get(name_key(leg)) for leg in legs}
            missing = [leg for leg, symbol in mapping.items() if symbol is None]
            if missing:
                if (sid, ",".join(missing)) not in self._warned:
                    self._warned.add((sid, ",".join(missing)))
                    self.out(
                        f"warning: session {sid} skipped: no prices for {', '.join(missing)} in {self.source_label}"
                    )
                continue
            targets[sid] = {leg: symbol for leg, symbol in mapping.items() if symbol is not None}
        self.targets = targets
        return targets

    def _join(self, wanted: dict[str, list[str]]) -> None:
        """Place the sessions new to the walk where `oracle.resume.place` says (each leg from its session's
        newest tick, unless --start names it), and say where each one starts."""
        sim = self.sim
        assert sim is not None
        for sid in set(self._joined) - set(wanted):
            del self._joined[sid]  # settled or cancelled: its lines stop
        new = {sid: legs for sid, legs in wanted.items() if sid not in self._joined}
        if new:
            last = {sid: dict(self.last_ticks(sid, legs)) if self.last_ticks else {} for sid, legs in new.items()}
            for leg in sim.extend([leg for legs in new.values() for leg in legs]):
                self.symbols.add(leg)
                if self.ticks:
                    self.out(f"sim: added {leg} for session {next(s for s, ls in new.items() if leg in ls)}")
            placed = resume.place(new, last, sim.legs, self._placed, self._configured, self._flagged)
            for symbol, origin in placed.walks.items():
                sim.set_start(symbol, origin.price)
            for key, (symbol, price) in placed.lines.items():
                sim.line(key, symbol, price)
            self._joined.update(placed.keys)
            self._placed.update(name_key(symbol) for symbol in placed.walks)  # walks on: later sessions join it
            for line in placed.said:
                self.out(("sim: " if self.ticks else "") + line)
        sim.keep_lines({key for keys in self._joined.values() for key in keys.values()})

    def _configured(self, symbol: str) -> int:
        assert self.sim is not None
        return self.sim.config.params(symbol).start  # the config's, or --start's

    def _flagged(self, symbol: str) -> bool:
        return "*" in self.start_flags or name_key(symbol) in self.start_flags

    def store_tick(self, prices: dict[str, int], volumes: Mapping[str, int] | None = None) -> None:
        """One Tick per target session and leg, all stamped `now`, in one short transaction. A leg's
        volume is the feed's for its symbol (a sim line `SYM (session)` trades its symbol's), or None."""
        at = self.now()
        by_key = {name_key(symbol): volume for symbol, volume in (volumes or {}).items()}
        rows = [
            Tick(
                session_id=sid,
                symbol=leg,
                at=at,
                price=prices[symbol],
                source=self.source_label,
                volume=volumes.get(symbol, by_key.get(name_key(leg))) if volumes else None,
            )
            for sid, legs in self.targets.items()
            for leg, symbol in legs.items()
            if symbol in prices  # a session placed again just now (after a split) is priced from the next tick
        ]
        self.latest.update(prices)
        self.ticks += 1
        if not rows:
            return
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with transaction.atomic():
                    Tick.objects.bulk_create(rows)
                self.prices_stored += len(rows)
                return
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == WRITE_ATTEMPTS - 1:
                    self.skipped += 1
                    self.out(f"warning: tick {self.ticks} not stored: {exc}")

    def scheduler_step(self, force: bool = False) -> list[tuple[str, str]]:
        """At most once per SCHEDULE_EVERY: the scheduler callback, then re-read the targets."""
        if self.schedule is None:
            return []
        mono = self.monotonic()
        if not force and self._last_schedule is not None and mono - self._last_schedule < SCHEDULE_EVERY:
            return []
        self._last_schedule = mono
        outcomes = self.schedule()
        for sid, outcome in outcomes:
            if self._outcomes.get(sid) != outcome:  # a session waiting for a price is reported once
                self._outcomes[sid] = outcome
                self.out(f"scheduler: {sid} {outcome}")
            if outcome.endswith(" applied"):  # a corporate action (a split): the sim places it again, from
                self._joined.pop(sid, None)  # its newest tick at the level after the cut
        self.refresh_targets()
        return outcomes

    def report_progress(self) -> None:
        if self.progress is None:
            return
        mono = self.monotonic()
        if self._last_progress is not None and mono - self._last_progress < self.progress_every:
            return
        self._last_progress = mono
        self.progress(self.progress_line())

    def progress_line(self) -> str:
        shown = [symbol for legs in self.targets.values() for symbol in legs.values()] or sorted(self.latest)
        shown = list(dict.fromkeys(shown))
        prices = " ".join(f"{leg} {price_text(self.latest[leg])}" for leg in shown[:8] if leg in self.latest)
        more = f" +{len(shown) - 8} more" if len(shown) > 8 else ""
        return (f"ticks {self.ticks} | {len(self.targets)} session(s) | {self._rate():.1f}/s | {prices}{more}").rstrip(
            " |"
        )

    def _rate(self) -> float:
        """Ticks per second since the first tick (which is sent at once)."""
        elapsed = self.monotonic() - self._started if self._started is not None else 0.0
        return (self.ticks - 1) / elapsed if self.ticks > 1 and elapsed > 0 else 0.0


@contextlib.contextmanager
def stop_on_signals(runner: Runner) -> Iterator[None]:
    """SIGINT/SIGTERM ask the runner to stop after the current tick; a second SIGINT interrupts at once.
    Outside the main thread (where handlers cannot be installed) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if runner.stop_reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        runner.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
