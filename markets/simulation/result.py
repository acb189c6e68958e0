"""What a simulation is asked to do and what it reports: its parameters, the result table, the error that
names the seed, step and events of a violation, and one planned action."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.models import Event
from markets import domain
from markets.models import stream_name
from oracle import units

ACTIONS = (
    "rfq", "quote", "accept", "cancel", "withdraw", "expire", "order", "cancel_order", "cut", "liquidate", "settle",
)  # fmt: skip
RFQ_ACTIONS = ("rfq", "quote", "accept", "cancel", "withdraw")
BATCH_ACTIONS = ("order", "cancel_order", "cut")
MECHANISMS = ("rfq", "batch", "both")
ORGANISER = "sim-org"
OUTSIDER = "sim-eve"


class SimulationError(Exception):
    """An invariant or an expectation broke. The message names what to replay: seed, step, events."""

    def __init__(self, *, seed: int, step: int, where: str, action: str, problem: str, events: Sequence[Event]):
        self.seed = seed
        self.step = step
        self.where = where
        self.action = action
        self.problem = problem
        self.events = [(e.seq, e.type, e.version) for e in events]
        involved = ", ".join(f"#{seq} {type_} (v{version})" for seq, type_, version in self.events) or "none"
        super().__init__(
            f"simulation seed {seed}, {where} ({action}): {problem}. Events involved: {involved}. "
            f"Replay it with --seed {seed} --steps {step} (and the same --participants/--legs/--makers) "
            f"in a fresh database."
        )


@dataclass(frozen=True)
class SimParams:
    seed: int = 1
    participants: int = 5  # holders in all: traders + makers
    legs: int = 4
    steps: int = 500
    makers: int = 2
    session_id: str | None = None  # default sim-<seed>
    tick_every: int = 10  # store one oracle tick every N steps
    replay_every: int = 0  # also compare replay with the projection every N steps (0: at the end only)
    fault_at: int | None = None  # testing aid: corrupt one holding right after this step's action
    mechanism: str = "rfq"  # how the session trades: rfq, batch (limit orders cut in batches) or both
    batch_seconds: int = 20  # a batch session's cut period (the clock moves 0 to 3 s a step)
    max_orders: int = 4  # resting orders per participant at most (small, so the limit is met)
    short_limit: str = ""  # bounded shorting: the session's short_limit ("" off), band and initial margin
    margin_band: str = ""
    initial_margin: str = ""
    fixing: str = "last"  # the settlement's fixing rule, by its name in `fixing_model.RULES`

    @property
    def sid(self) -> str:
        return self.session_id or f"sim-{self.seed}"

    @property
    def traders(self) -> int:
        return self.participants - self.makers

    def validate(self) -> None:
        if self.seed < 0:
            raise ValueError("--seed must be 0 or more")
        if not domain.MIN_LEGS <= self.legs <= domain.MAX_LEGS:
            raise ValueError(f"--legs must be {domain.MIN_LEGS} to {domain.MAX_LEGS}")
        if self.makers < 1:
            raise ValueError("--makers must be at least 1")
        if self.traders < 1:
            raise ValueError("--participants counts traders and makers: it must exceed --makers")
        if self.participants > 500:
            raise ValueError("--participants must be at most 500")
        if self.steps < 0:
            raise ValueError("--steps must be 0 or more")
        if self.tick_every < 1:
            raise ValueError("--tick-every must be at least 1")
        if self.replay_every < 0:
            raise ValueError("--replay-every must be 0 or more")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"--mechanism must be one of {', '.join(MECHANISMS)}")
        if not 1 <= self.batch_seconds <= 3600:
            raise ValueError("--batch-seconds must be 1 to 3600")
        if self.short_limit:
            from markets.domain import margin

            try:
                margin.margin_settings(self.short_limit, self.margin_band or None, self.initial_margin or None)
            except domain.DomainError as exc:
                raise ValueError(f"--short-limit: {exc.message}") from None
        from markets.simulation import fixing_model

        if self.fixing not in fixing_model.RULES:
            raise ValueError(f"--fixing must be one of {', '.join(fixing_model.RULES)}")
        if self.fault_at is not None and not 1 <= self.fault_at <= self.steps:
            raise ValueError(f"--inject-fault must name a step from 1 to --steps ({self.steps})")


@dataclass
class ActionCount:
    accepted: int = 0
    rejected: int = 0
    on_purpose: int = 0  # of the rejected: bad inputs sent deliberately

    @property
    def attempted(self) -> int:
        return self.accepted + self.rejected


@dataclass
class SimulationResult:
    params: SimParams
    actions: dict[str, ActionCount] = field(default_factory=lambda: {a: ActionCount() for a in ACTIONS})
    codes: Counter = field(default_factory=Counter)
    steps_done: int = 0
    events_written: int = 0
    ticks_stored: int = 0
    trades: int = 0
    cuts: int = 0  # batches cut (cleared or not)
    fills: int = 0  # orders that traded in them
    elapsed: float = 0.0
    head_hash: str = ""
    head_version: int = 0
    head_seq: int = 0
    prices: dict[str, int] = field(default_factory=dict)
    payout_total: str = ""
    verified: bool = False
    jumps: int = 0  # price jumps in the ticks (shorting)
    liquidations: int = 0
    deleveraged_units: int = 0  # base units auto-deleveraging moved off the ranked holders
    bankrupt: int = 0
    buy_backs: int = 0  # liquidations that offered the shorts back in the next batch
    margin_held: int = 0  # orders a cut held out of its batch (their owners' fills broke the margin rule)  # liquidations whose longs did not cover the shorts at the oracle's price
    deficit: str = ""  # at settlement: the sum of the negative payouts a haircut covered
    haircut: str = ""  # the factor n/d applied to the positive payouts
    shorts_open: int = 0  # holdings below zero at settlement
    fixing_dropped: int = 0  # composite: sources dropped as outliers, over the legs
    fixing_said: str = ""  # the tiers that answered, and the sources dropped (`--fixing`)

    @property
    def ops(self) -> int:
        return sum(c.attempted for c in self.actions.values())

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    def shown(self) -> tuple[str, ...]:
        """The actions of the session's mechanism (an RFQ session has no orders; a batch one no RFQs)."""
        mechanism = self.params.mechanism
        hidden = (BATCH_ACTIONS if mechanism == "rfq" else ()) + (RFQ_ACTIONS if mechanism == "batch" else ())
        hidden += () if self.params.short_limit else ("liquidate",)
        return tuple(a for a in ACTIONS if a not in hidden or self.actions[a].attempted)

    def table(self) -> str:
        p = self.params
        trading = f", {p.mechanism} session (cut every {p.batch_seconds} s)" if p.mechanism != "rfq" else ""
        if p.short_limit:
            trading += f", shorting (short_limit {p.short_limit}, margin_band {p.margin_band or 'default'})"
        lines = [
            f"simulation {p.sid}: seed {p.seed}, {p.participants} participants "
            f"(traders {p.traders}, makers {p.makers}), {p.legs} legs, {self.steps_done} steps{trading}",
            "",
            f"  {'action':<12} {'attempted':>9} {'accepted':>9} {'rejected':>9} {'on purpose':>11}",
        ]
        total = ActionCount()
        for name in self.shown():
            c = self.actions[name]
            total.accepted += c.accepted
            total.rejected += c.rejected
            total.on_purpose += c.on_purpose
            lines.append(f"  {name:<12} {c.attempted:>9} {c.accepted:>9} {c.rejected:>9} {c.on_purpose:>11}")
        lines.append(
            f"  {'total':<12} {total.attempted:>9} {total.accepted:>9} {total.rejected:>9} {total.on_purpose:>11}"
        )
        lines.append("")
        codes = ", ".join(f"{code} {n}" for code, n in sorted(self.codes.items())) or "none"
        prices = " ".join(f"{leg}={domain.price_str(v)}" for leg, v in self.prices.items())
        lines += [
            f"  refusals by code  {codes}",
            f"  trades            {self.trades}",
            *([f"  batches           {self.cuts} cut, {self.fills} fills"] if p.mechanism != "rfq" else []),
            f"  events written    {self.events_written} (stream {stream_name(p.sid)} at v{self.head_version}, "
            f"last seq {self.head_seq})",
            *(self._shorting_lines() if p.short_limit else []),
            f"  oracle ticks      {self.ticks_stored} (every {p.tick_every} steps, sim:{p.seed})",
            f"  settled at        {prices or '-'} (oracle fixing: {p.fixing}{self.fixing_said})",
            f"  payouts total     {self.payout_total or '-'} (== q.S)",
            "  checks            invariants 1-3 and no-write-on-refusal after every step"
            f"{' (and 0 <= reserved <= held, reserved == resting orders)' if p.mechanism != 'rfq' else ''}; 4 at settlement; "
            f"replay == projection; verify_session {'ok' if self.verified else 'not run'}",
            f"  time              {self.elapsed:.2f} s, {self.ops_per_second:.1f} ops/s",
            f"  head hash         {self.head_hash}",
        ]
        return "\n".join(lines)

    def _shorting_lines(self) -> list[str]:
        haircut = f"deficit {self.deficit}, factor {self.haircut}" if self.deficit else "none (every x.S >= 0)"
        return [
            f"  shorting          {self.jumps} price jumps, {self.liquidations} liquidated ({self.bankrupt} bankrupt, "
            f"{self.buy_backs} by buy-back orders), {domain.qty_str(self.deleveraged_units)} units deleveraged, "
            f"{self.margin_held} orders held out of batches by the margin rule, {self.shorts_open} short holdings "
            "at settlement",
            f"  haircut           {haircut}",
        ]


@dataclass
class _Action:
    kind: str
    label: str
    run: Callable[[], object]
    expect: frozenset[str] = frozenset()  # refusal codes that apply; empty: it must succeed
    on_purpose: bool = False
    writes: int = 1  # events a success appends


def _text(base: int, dp: int) -> str:
    """Base units as the shortest decimal text a person would type: 12.5, 3, 0.000001."""
    return units.short(base, dp)
