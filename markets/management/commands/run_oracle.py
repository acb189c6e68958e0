"""Feed prices to sessions: a seeded correlated random walk (sim) or a CSV replay, and run the scheduler.

The loop is the oracle's (`oracle.runner.Runner`); what it prices and what its scheduler steps do are the
market's, passed in here as callbacks (`market_runner`).

    manage.py run_oracle --all                                   # sim, every session not settled
    manage.py run_oracle --session-id demo --seed 42 --tick-ms 250
    manage.py run_oracle --all --mode replay --csv prices_demo.csv --speed 2 --loop
    manage.py run_oracle --session-id demo --source a & manage.py run_oracle --session-id demo --source b

Runs until stopped: SIGINT (Ctrl-C) or SIGTERM ends it after the current tick with a summary line.
While it runs it opens scheduled sessions at t1 and settles timed sessions at t2 (at most once a second).
Started again, the sim continues each leg of each session from its newest stored tick (`oracle.resume`;
`--start` overrides it for the legs it names) and says so; a replay starts again at its first row.
Every tick is named by its feed (`--source NAME`, by default `sim:seed=N` / `replay:FILE`) and carries a
volume (the sim's seeded sizes; a replay's volume columns, where the file has them). Several oracles may
price one session at once under different names: each resumes from its own ticks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import secrets
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ledger import clock
from ledger.store import storage_problem
from markets import selectors, services
from markets.errors import DomainError
from markets.models import Session
from markets.selectors import prices
from oracle import action_files, simvolumes, sources, units
from oracle.runner import Runner, source_problem, stop_on_signals

ORACLE_DIR = Path(sources.__file__).resolve().parent
DEFAULT_CONFIG = ORACLE_DIR / "configs" / "default.json"
DATA_DIR = ORACLE_DIR / "data"
DEFAULT_TICK_MS = 500
SIM_ONLY = ("seed", "config", "start", "drift", "vol", "correlation", "time_scale")
REPLAY_ONLY = ("csv", "loop", "speed", "actions")


class Command(BaseCommand):
    help = (
        "Stream prices into sessions (sim: seeded correlated random walk; replay: a ts,SYM,... CSV) and "
        "open/settle scheduled sessions on time. Stops cleanly on Ctrl-C or SIGTERM."
    )
    # Tests override these (e.g. a fake sleep that advances a frozen ledger.clock): passed to the Runner.
    runner_options: dict = {}

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mode", choices=["sim", "replay"], default="sim", help="Price source (default sim)")
        parser.add_argument(
            "--session-id", action="append", default=[], metavar="ID", help="Session to price (repeatable)"
        )
        parser.add_argument("--all", action="store_true", help="Every session not settled, including new ones")
        parser.add_argument(
            "--tick-ms", type=int, metavar="MS", help=f"Milliseconds between ticks (default {DEFAULT_TICK_MS})"
        )
        parser.add_argument("--max-ticks", type=int, metavar="N", help="Stop after N ticks")
        parser.add_argument("--quiet", action="store_true", help="No banner and no progress lines")
        parser.add_argument(
            "--source",
            metavar="NAME",
            help="The feed's name on its ticks (default sim:seed=N or replay:FILE); give each oracle of a session its own",
        )
        sim = parser.add_argument_group("sim mode")
        sim.add_argument("--seed", type=int, metavar="N", help="Random seed: same seed, same prices (default: random)")
        sim.add_argument("--config", metavar="FILE", help="JSON config (default oracle/configs/default.json)")
        sim.add_argument(
            "--start",
            action="append",
            metavar="[SYM=]PRICE",
            help="Start price (repeatable; a bare PRICE: every leg). Without it each leg resumes from its newest tick",
        )
        sim.add_argument("--drift", action="append", metavar="[SYM=]MU", help="Annual drift override (repeatable)")
        sim.add_argument("--vol", action="append", metavar="[SYM=]SIGMA", help="Annual volatility override")
        sim.add_argument("--correlation", type=float, metavar="RHO", help="Same correlation for every pair of legs")
        sim.add_argument("--time-scale", type=float, metavar="X", help="Market seconds per real second")
        replay = parser.add_argument_group("replay mode")
        replay.add_argument(
            "--csv", metavar="FILE", help="ts,SYM1,SYM2,... file (a bare name is looked up in oracle/data)"
        )
        replay.add_argument("--loop", action="store_true", help="Start again at the end of the file")
        replay.add_argument("--speed", type=float, metavar="X", help="Replay at X times the file's own pace")
        replay.add_argument(
            "--actions",
            metavar="FILE",
            help="Corporate actions in the file's time (effective_at,kind,leg,ratio,amount,into,cash,to), "
            "scheduled on the sessions priced, each at its place on the replay",
        )

    def handle(self, *args, **options) -> None:
        mode = options["mode"]
        self._check_flags(mode, options)
        source = options["source"]
        if source is not None and (problem := source_problem(source)):
            raise CommandError(f"--source {source[:70]!r}: {problem}")
        tick_ms = options["tick_ms"]
        if tick_ms is not None and not 1 <= tick_ms <= 3_600_000:
            raise CommandError(f"--tick-ms {tick_ms}: must be 1 to 3600000")
        max_ticks = options["max_ticks"]
        if max_ticks is not None and max_ticks < 1:
            raise CommandError(f"--max-ticks {max_ticks}: must be at least 1")
        session_ids = self._sessions(options["session_id"], options["all"])
        legs = self._legs(session_ids)
        start_flags: list[str] = []
        if mode == "sim":
            feed, label, sim, symbols, about = self._sim(legs, (tick_ms or DEFAULT_TICK_MS) / 1000, options)
            start_flags = list(_overrides(options["start"], "--start", _price))
        else:
            # --all prices every session it can and names the ones it skips; named sessions must be priced.
            feed, label, symbols, about = self._replay(legs if session_ids is not None else [], tick_ms, options)
            sim = None
        quiet = options["quiet"]
        actions = self._read_actions(options["actions"]) if options.get("actions") else None

        def place_actions() -> None:  # as the replay starts: its first row comes next, at once
            count = self._schedule_actions(actions, session_ids)
            if not quiet:
                self._line(f"actions: {count} scheduled from {Path(options['actions']).name} on the replay's clock")

        tty = self.stdout.isatty()
        label = source if source is not None else label
        runner = market_runner(
            feed=feed,
            source_label=label,
            session_ids=session_ids,
            symbols=symbols,
            sim=sim,
            start_flags=start_flags,
            out=self._line,
            progress=None if quiet else (self._status if tty else self._line),
            progress_every=1.0 if tty else 5.0,
            max_ticks=max_ticks,
            on_start=place_actions if actions is not None else None,
            **self.runner_options,
        )
        if not quiet:
            who = "all sessions not settled" if session_ids is None else ", ".join(session_ids)
            self._line(f"oracle {label}: {about}; pricing {who}. Ctrl-C stops after the current tick.")
        with stop_on_signals(runner):
            try:
                summary = runner.run()
            except DatabaseError as exc:
                problem = storage_problem(exc)
                if problem is None:
                    raise
                raise CommandError(
                    f"oracle stopped after {runner.ticks} ticks: {problem}; the tick in progress was not stored"
                ) from None
        self._line(summary.line())

    # ------------------------------------------------------------ options

    def _check_flags(self, mode: str, options: dict) -> None:
        wrong = SIM_ONLY if mode == "replay" else REPLAY_ONLY
        for name in wrong:
            if options.get(name) not in (None, False, []):
                raise CommandError(
                    f"--{name.replace('_', '-')} applies only to --mode {'sim' if mode == 'replay' else 'replay'}"
                )
        if mode == "replay" and not options["csv"]:
            raise CommandError("--mode replay needs --csv FILE")
        if options["speed"] is not None and options["tick_ms"] is not None:
            raise CommandError("use either --speed (the file's own pace) or --tick-ms (a fixed pace), not both")
        if options["speed"] is not None and not 0 < options["speed"] <= 1_000_000:
            raise CommandError(f"--speed {options['speed']}: must be greater than 0")
        if options["seed"] is not None and not 0 <= options["seed"] < 2**63:
            raise CommandError(f"--seed {options['seed']}: must be 0 to 2**63-1")

    def _sessions(self, ids: list[str], all_: bool) -> list[str] | None:
        if all_ and ids:
            raise CommandError("use either --session-id or --all, not both")
        if all_:
            return None
        if not ids:
            raise CommandError("name the sessions to price with --session-id ID (repeatable), or use --all")
        ids = list(dict.fromkeys(ids))
        found = dict(Session.objects.filter(id__in=ids).values_list("id", "status"))
        for sid in ids:
            if sid not in found:
                raise CommandError(f"unknown session {sid[:64]!r}")
            if found[sid] in (Session.Status.SETTLED, Session.Status.CANCELLED):
                raise CommandError(f"session {sid} is already {found[sid]}: nothing to price")
        return ids

    def _legs(self, session_ids: list[str] | None) -> list[str]:
        legs: dict[str, None] = {}
        for session_legs in selectors.priced_sessions(session_ids).values():
            legs.update(dict.fromkeys(session_legs))
        return list(legs)

    def _sim(self, legs: list[str], tick_seconds: float, options: dict):
        seed = options["seed"] if options["seed"] is not None else secrets.randbelow(2**32)
        try:
            config = sources.load_config(options["config"] or DEFAULT_CONFIG)
            config = config.with_overrides(
                start=_overrides(options["start"], "--start", _price),
                drift=_overrides(options["drift"], "--drift", float),
                vol=_overrides(options["vol"], "--vol", _vol),
                correlation=options["correlation"],
                time_scale=options["time_scale"],
                legs=legs,
            )
            config.check("flags")
            sim = sources.SimSource(legs, config, seed, tick_seconds)
        except sources.ConfigError as exc:
            raise CommandError(str(exc)) from None
        about = f"{tick_seconds * 1000:g} ms ticks, time scale {config.time_scale:g}"
        if options["source"] is not None:
            about = f"seed {seed}, {about}"  # the label no longer says it
        feed = simvolumes.with_volumes(
            sources.sim_feed(sim, tick_seconds), sim.legs, simvolumes.SimVolumes(config, seed)
        )
        return feed, f"sim:seed={seed}", sim, set(legs), about

    def _replay(self, legs: list[str], tick_ms: int | None, options: dict):
        path = Path(options["csv"])
        if not path.exists() and not path.parent.parts and (DATA_DIR / path).exists():
            path = DATA_DIR / path
        try:
            rows = sources.load_replay_csv(path, legs)
        except sources.ReplayError as exc:
            raise CommandError(str(exc).replace("\n", " ")) from None
        if options["speed"] is not None:
            delays = sources.replay_delays([row.at for row in rows], speed=options["speed"])
            about = f"{len(rows)} rows at {options['speed']:g}x the file's pace"
        else:
            delays = sources.replay_delays([row.at for row in rows], tick_ms=tick_ms or DEFAULT_TICK_MS)
            about = f"{len(rows)} rows, one every {tick_ms or DEFAULT_TICK_MS} ms"
        if options["loop"]:
            about += ", looping"
        about += "; from row 1 (a replay starts at the top of its file: it does not resume)"
        feed = sources.replay_feed(rows, delays, loop=options["loop"], volumes=True)
        self._replay_clock = ([row.at for row in rows], list(itertools.accumulate(delays)))
        return feed, f"replay:{path.name}", set(rows[0][1]), about

    def _read_actions(self, path_text: str) -> tuple[Path, list]:
        """The actions file, read before anything runs (a malformed one: one line, nothing written)."""
        path = Path(path_text)
        if not path.exists() and not path.parent.parts and (DATA_DIR / path).exists():
            path = DATA_DIR / path
        try:
            return path, action_files.load_actions_csv(path)
        except sources.ReplayError as exc:
            raise CommandError(str(exc)) from None

    def _schedule_actions(self, actions: tuple[Path, list], session_ids: list[str] | None) -> int:
        """The actions file's rows scheduled (as the system) on every priced session with the leg, each at
        its place on the replay's clock from now; a refusal is one line naming the file's line."""
        path, rows = actions
        row_ats, offsets = self._replay_clock
        placed = [(action, action_files.on_the_replay(action.effective_at, row_ats, offsets)) for action in rows]
        for action, offset in placed:
            if offset is None:
                raise CommandError(f"{path.name}:{action.line}:1: before the prices file's first row")
        start = clock.now()
        scheduled = 0
        for action, offset in placed:
            at = start + dt.timedelta(seconds=offset)
            for sid, legs in selectors.priced_sessions(session_ids).items():
                if action.leg not in legs:
                    continue
                try:
                    services.schedule_action(None, sid, action.kind, action.leg, at, **action.params)
                except DomainError as exc:
                    raise CommandError(f"{path.name}:{action.line}: {sid}: {exc.message}") from None
                scheduled += 1
        return scheduled

    # ------------------------------------------------------------ output

    _status_pending = False

    def _line(self, text: str) -> None:
        if self._status_pending:
            self.stdout.write("")
            self._status_pending = False
        self.stdout.write(text)
        self.stdout.flush()

    def _status(self, text: str) -> None:
        """A progress line rewritten in place (terminal only)."""
        self.stdout.write(f"\r{text}\x1b[K", ending="")
        self.stdout.flush()
        self._status_pending = True


def market_runner(**options) -> Runner:
    """The oracle's loop with the market's callbacks: price the sessions not settled or cancelled (the sim
    resuming each leg from the session's newest tick of this feed, else of any feed), run the market's
    scheduler (`services.run_due`) once a second, stamp ticks with the market's clock."""
    source = options["source_label"][:64]
    return Runner(
        sessions=selectors.priced_sessions,
        last_ticks=lambda session_id, legs: prices.resume_ticks(session_id, legs, source),
        schedule=services.run_due,
        due_first=services.actions_due,
        now=clock.now,
        **options,
    )


def _price(text: str) -> int:
    return sources.parse_price_text(text)


def _vol(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 10:
        raise ValueError("volatility must be between 0 and 10")
    return value


def _overrides(items: list[str] | None, flag: str, parse) -> dict:
    """`SYM=VALUE` or a bare `VALUE` (every leg) -> {SYM or "*": parsed}."""
    result = {}
    for item in items or []:
        sym, sep, value = item.rpartition("=")
        key = sym.strip().upper() if sep else "*"
        if sep and not key:
            raise CommandError(f"{flag} {item!r}: write SYM=VALUE or just VALUE for every leg")
        if sep and (problem := units.leg_text_problem(sym.strip())):  # the long s upper-cases to S
            raise CommandError(f"{flag} {item!r}: the symbol {problem}")
        try:
            parsed = parse(value.strip())
        except ValueError as exc:
            raise CommandError(f"{flag} {item!r}: {exc}") from None
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise CommandError(f"{flag} {item!r}: must be a finite number")
        result[key] = parsed
    return result
