"""Counterparties for a session: automated market makers and noise takers (`markets.bots`).

    manage.py run_bots --session demo --makers 2 --takers 3 [--seed N] [--interval SECONDS] [--steps N]

The bots are participants (bot-maker-1.., bot-taker-1..) and join before the session opens: a session
still `created` gets them here (then its organiser opens it, or `--open` opens it now); an open session
they have not joined is refused, since who joins after opening holds nothing. Every --interval seconds
each bot takes one turn (`Crew.step`). Ctrl-C or SIGTERM ends the run after the current action with a
summary line; so do --steps N, and the session settling or closing.

In a session that trades by batch auction (mechanism batch or both) the bots place and cancel limit orders
(makers two-sided around the fair rate, takers crossing it); the cuts that clear them are the scheduler's
(`run_oracle`, or `settle --due` from cron), not the bots'.
"""

from __future__ import annotations

import math
import secrets
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ledger import clock
from ledger.store import storage_problem
from markets import domain, services
from markets.bots import Crew, join_bots, not_joined
from markets.bots.crew import MAX_MAKERS, MAX_TAKERS, bot_names
from markets.errors import DomainError
from markets.models import Session
from oracle.runner import stop_on_signals

MIN_INTERVAL, MAX_INTERVAL = 0.01, 3600.0
SLEEP_SLICE = 0.1  # the wait between steps wakes this often to notice a stop request
OVER = (Session.Status.SETTLED, Session.Status.CANCELLED, Session.Status.CLOSED)


class Command(BaseCommand):
    help = (
        "Run automated market makers and noise takers in a session, through the same services as people. "
        "Stops cleanly on Ctrl-C or SIGTERM, and by itself when the session settles or trading closes."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--session", metavar="ID", help="The session to trade in (required)")
        parser.add_argument("--makers", default="2", metavar="N", help=f"Market makers, 0 to {MAX_MAKERS} (default 2)")
        parser.add_argument("--takers", default="3", metavar="N", help=f"Noise takers, 0 to {MAX_TAKERS} (default 3)")
        parser.add_argument("--seed", metavar="N", help="Random seed: same seed, same prices, same actions")
        parser.add_argument("--interval", default="1.0", metavar="SECONDS", help="Seconds between steps (default 1)")
        parser.add_argument("--steps", metavar="N", help="Stop after N steps (default: run until stopped)")
        parser.add_argument("--open", action="store_true", help="Open a session not yet open (as the system)")
        parser.add_argument("--quiet", action="store_true", help="Print only refusals and the summary")

    def handle(self, *args, session: str | None, open: bool, quiet: bool, **options) -> None:
        if not session:
            raise CommandError("name the session the bots trade in: run_bots --session ID")
        makers = _whole(options["makers"], "--makers", 0, MAX_MAKERS)
        takers = _whole(options["takers"], "--takers", 0, MAX_TAKERS)
        if makers + takers == 0:
            raise CommandError("--makers 0 --takers 0: no bots to run; ask for at least one")
        seed = _whole(options["seed"], "--seed", 0, 2**63 - 1) if options["seed"] is not None else None
        steps = _whole(options["steps"], "--steps", 1, 10**9) if options["steps"] is not None else None
        interval = _seconds(options["interval"])
        self.quiet = quiet
        self.stop_reason: str | None = None
        found = self._session(session)
        self._join(found, makers, takers, open)
        seed = seed if seed is not None else secrets.randbelow(2**32)
        crew = Crew(found.id, makers, takers, seed)
        self._line(
            f"bots seed={seed}: {makers} makers, {takers} takers in session {found.id}, a step every "
            f"{interval:g}s. Ctrl-C stops after the current action."
        )
        if found.trades_by_batch:
            self._line(
                f"session {found.id} trades by batch auction: its orders clear at each cut, every "
                f"{found.batch_seconds}s, made by the scheduler (run_oracle, or settle --due from cron)"
            )
        started = time.monotonic()
        with stop_on_signals(self):
            try:
                self._run(crew, interval, steps)
            except DatabaseError as exc:
                problem = storage_problem(exc)
                if problem is None:
                    raise
                raise CommandError(f"bots stopped after {crew.actions} actions: {problem}") from None
        self._line(
            f"bots stopped ({self.stop_reason}): {crew.actions} actions, {crew.trades} trades, "
            f"{crew.refusals} refusals in {time.monotonic() - started:.1f}s (seed {seed})"
        )

    # ------------------------------------------------------------ the loop

    def request_stop(self, reason: str) -> None:
        """Asked by a signal (or the loop): the run ends after the current action."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def _run(self, crew: Crew, interval: float, steps: int | None) -> None:
        waiting = False
        done = 0
        while self.stop_reason is None:
            now = clock.now()
            current = crew.session()
            phase = current.phase(now)
            if phase in OVER:
                self.request_stop(_why_over(current, phase))
                break
            if phase == Session.Status.CREATED:
                if not waiting:
                    self._line(f"waiting for session {current.id} to open (its organiser opens it, or run_bots --open)")
                waiting = True
            else:
                waiting = False
                for action in crew.step(now, stop=lambda: self.stop_reason is not None):
                    if not (self.quiet and action.ok):
                        self._line(action.line())
            done += 1
            if steps is not None and done >= steps:
                self.request_stop(f"--steps {steps} reached")
                break
            self._sleep(interval)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.stop_reason is None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, SLEEP_SLICE))

    # ------------------------------------------------------------ the session and its bots

    def _session(self, session_id: str) -> Session:
        found = Session.objects.filter(id=session_id).first() if domain.SESSION_ID.fullmatch(session_id) else None
        if found is None:
            raise CommandError(f"unknown session {session_id[:64]!r}")
        phase = found.phase(clock.now())
        if phase in OVER:
            raise CommandError(f"{_why_over(found, phase)}: nothing to trade")
        return found

    def _join(self, session: Session, makers: int, takers: int, open_it: bool) -> None:
        """Bots join a session that has not opened; an open one must already have them."""
        names = bot_names(makers, takers)
        if session.status == Session.Status.CREATED:
            try:
                joined = join_bots(session.id, makers, takers)
                if joined:
                    self._line(f"joined {', '.join(joined)} to session {session.id}")
                if open_it:
                    services.open_session(None, session.id)
                    self._line(f"opened session {session.id}")
            except DomainError as exc:
                raise CommandError(f"cannot set up the bots in {session.id}: {exc.message}") from None
            if not open_it:
                self._line(
                    f"session {session.id} is not open yet: its organiser opens it from the floor "
                    "(or run_bots --open opens it now); the bots trade once it is open"
                )
            return
        missing = not_joined(session, names)
        if missing:
            raise CommandError(
                f"session {session.id} is already open and {', '.join(missing)} did not join it before it opened "
                "(who joins later holds nothing): create a new session and run run_bots on it before opening it, "
                "or restart the demo with its bots: ./start-demo.sh --reset --bots"
            )

    # ------------------------------------------------------------ output

    def _line(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def _why_over(session: Session, phase: str) -> str:
    if phase == Session.Status.CLOSED:
        at = f" at t2 ({domain.when(session.t2)})" if session.t2 else ""
        return f"trading in session {session.id} closed{at}"
    return f"session {session.id} is {phase}"


def _whole(text: object, flag: str, low: int, high: int) -> int:
    value = str(text).strip()
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise CommandError(f"{flag} {str(text)[:20]!r}: must be a whole number from {low:,} to {high:,}")
    return int(value)


def _seconds(text: object) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise CommandError(f"--interval {str(text)[:20]!r}: must be a number of seconds from 0.01 to 3600")
    return value
