"""Run a seeded, repeatable market through the real services (see markets/simulation.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from markets.simulation import SimParams, Simulation, SimulationError, event_hashes, fixing_model


class Command(BaseCommand):
    help = (
        "Simulate a market: RFQs, quotes, accepts, cancels, withdrawals, quote expiries and bad inputs on purpose "
        "(with --mechanism batch or both: limit orders, cancels and batch cuts too), through the real services on a "
        "frozen clock, then settle at the sim oracle's fixing. Checks the invariants after every step and replay + "
        "audit at the end. The same seed in a fresh database gives the same ledger (the same head hash)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=1, help="Seed of every random choice and of the oracle")
        parser.add_argument(
            "--participants", type=int, default=5, help="Holders in all, traders and makers (default 5)"
        )
        parser.add_argument("--makers", type=int, default=2, help="How many of the participants are makers")
        parser.add_argument("--legs", type=int, default=4, help="Legs in the basket, 2 to 32 (default 4)")
        parser.add_argument("--steps", type=int, default=500, help="Actions to run before settlement")
        parser.add_argument("--session-id", default=None, help="Session to create (default sim-<seed>)")
        parser.add_argument("--tick-every", type=int, default=10, help="Store an oracle tick every N steps")
        parser.add_argument(
            "--replay-every", type=int, default=0, help="Also compare replay with the projection every N steps"
        )
        parser.add_argument(
            "--mechanism",
            default="rfq",
            choices=("rfq", "batch", "both"),
            help="How the session trades: rfq (default), batch (limit orders cut in batches) or both",
        )
        parser.add_argument(
            "--batch-seconds", type=int, default=20, help="A batch session's cut period in seconds (default 20)"
        )
        parser.add_argument(
            "--max-orders", type=int, default=4, help="Resting orders per participant at most (default 4)"
        )
        parser.add_argument(
            "--short-limit",
            default="",
            metavar="FRACTION",
            help="Bounded shorting: the session's short_limit (e.g. 0.3; default off). Traders then go short, "
            "prices jump, and a liquidation run follows every tick (RFQ sessions)",
        )
        parser.add_argument("--margin-band", default="", help="With --short-limit: the scenario box (default 0.15)")
        parser.add_argument(
            "--initial-margin", default="", help="With --short-limit: the initial margin buffer (default 0.05)"
        )
        parser.add_argument(
            "--fixing",
            default="last",
            choices=tuple(fixing_model.RULES),
            help="The settlement's fixing rule (default last): median, twap or vwap over 60 s, fallback "
            "(vwap with 5 units at least, then twap, then last), composite (the median of three feeds, one "
            "sometimes far off); the simulator makes each leg's fixing again from its own ticks",
        )
        parser.add_argument(
            "--inject-fault",
            type=int,
            default=None,
            metavar="STEP",
            help="Testing aid: corrupt one holding after STEP, to see the checks stop the run",
        )
        parser.add_argument("--quiet", action="store_true", help="No progress line")

    def handle(self, *args, **options) -> None:
        params = SimParams(
            seed=options["seed"],
            participants=options["participants"],
            legs=options["legs"],
            steps=options["steps"],
            makers=options["makers"],
            session_id=options["session_id"],
            tick_every=options["tick_every"],
            replay_every=options["replay_every"],
            fault_at=options["inject_fault"],
            mechanism=options["mechanism"],
            batch_seconds=options["batch_seconds"],
            max_orders=options["max_orders"],
            short_limit=options["short_limit"],
            fixing=options["fixing"],
            margin_band=options["margin_band"],
            initial_margin=options["initial_margin"],
        )
        progress = None
        if not options["quiet"]:
            progress = Progress(self._progress_write, tty=_isatty(self.stdout, self.stderr))
        try:
            result = Simulation(params, progress=progress).run()
        except (ValueError, SimulationError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if progress is not None:
                progress.close()
        self.stdout.write(result.table())
        if options["verbosity"] >= 2:
            self.stdout.write("\nevents (seq version type hash):")
            for seq, version, type_, digest in event_hashes(params.sid):
                self.stdout.write(f"  #{seq} v{version} {type_} {digest}")

    def _progress_write(self, text: str) -> None:
        self.stderr.write(text, ending="", style_func=lambda line: line)
        self.stderr.flush()


class Progress:
    """A `\\r` line on a terminal (redrawn at most 10 times a second); elsewhere one line every 5%."""

    def __init__(self, write: Callable[[str], None], *, tty: bool) -> None:
        self.write = write
        self.tty = tty
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.last_bucket = 0
        self.drawn = False

    def __call__(self, step: int, steps: int) -> None:
        now = time.perf_counter()
        if step == 0:  # setup done: the rate counts from here
            self.started = now
            return
        if self.tty:
            if now - self.last_draw < 0.1 and step != steps:
                return
            self.last_draw = now
            self.write("\r" + self._line(step, steps, now))
            self.drawn = True
        else:
            bucket = step * 20 // steps if steps else 20
            if bucket == self.last_bucket:
                return
            self.last_bucket = bucket
            self.write(self._line(step, steps, now) + "\n")

    def _line(self, step: int, steps: int, now: float) -> str:
        elapsed = now - self.started
        rate = step / elapsed if elapsed > 0 else 0.0
        pct = 100 * step // steps if steps else 100
        width = 30
        filled = width * step // steps if steps else width
        return f"simulate [{'#' * filled}{'.' * (width - filled)}] {pct:3d}% step {step}/{steps} {rate:.0f} ops/s"

    def close(self) -> None:
        if self.tty and self.drawn:
            self.write("\n")


def _isatty(*streams) -> bool:
    for stream in streams:
        try:
            if stream.isatty():
                return True
        except (AttributeError, ValueError):
            continue
    return False
