"""The simulator's run (see the package's docstring for what it does and checks)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import F, Max

from ledger import clock, store
from ledger.models import Event
from markets import domain, projections, services
from markets.errors import DomainError
from markets.models import Holding, Participant, Session, stream_name
from markets.simulation import fixing_model, model
from markets.simulation.auction import Auction
from markets.simulation.feed import Feed
from markets.simulation.intents import Intents
from markets.simulation.proof import Proof
from markets.simulation.result import (
    ORGANISER,
    OUTSIDER,
    SimParams,
    SimulationError,
    SimulationResult,
    _Action,
    _text,
)
from markets.simulation.shorting import ShortSelling
from oracle.sources import SimConfig, SimSource, load_config

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SYMBOLS = (
    "AAPL", "NVDA", "META", "ORCL", "MSFT", "AMZN", "GOOG", "TSLA",
    "AMD", "INTC", "IBM", "CSCO", "ADBE", "CRM", "QCOM", "TXN",
)  # fmt: skip
ORACLE_CONFIG = Path(settings.BASE_DIR) / "oracle" / "configs" / "default.json"
TICK_SECONDS = 60.0  # market seconds the oracle's walk moves between two stored ticks


class Simulation(Intents, Auction, Proof, ShortSelling, Feed):
    """Run with `Simulation(SimParams(...)).run()`; returns a SimulationResult or raises SimulationError.

    `progress(step, steps)` is called once set up (step 0) and after every step; `after_action(sim, step)`
    runs right after each step's action, before the checks (tests use it to inject faults).
    """

    def __init__(
        self,
        params: SimParams,
        *,
        progress: Callable[[int, int], None] | None = None,
        after_action: Callable[[Simulation, int], None] | None = None,
    ) -> None:
        params.validate()
        self.params = params
        self.sid = params.sid
        self.stream = stream_name(self.sid)
        self.progress = progress
        self.after_action = after_action
        self.rng = np.random.default_rng(params.seed)
        self.result = SimulationResult(params)
        self.step = 0
        self.where = "setup"
        self.legs = [SYMBOLS[k] if k < len(SYMBOLS) else f"SIM{k + 1:02d}" for k in range(params.legs)]
        self.traders = [f"sim-t{i}" for i in range(1, params.traders + 1)]
        self.makers = [f"sim-m{i}" for i in range(1, params.makers + 1)]
        self.holders = sorted(self.traders + self.makers)
        self.roles = (
            {ORGANISER: "organiser"} | dict.fromkeys(self.traders, "trader") | dict.fromkeys(self.makers, "maker")
        )
        self.users: dict = {}
        self.q: list[int] = []
        self.matrix: dict[str, list[int]] = {}
        self.prices: dict[str, int] = {}
        self.status = Session.Status.CREATED
        self.timed = not settings.ALLOW_MANUAL_SETTLE
        config = load_config(ORACLE_CONFIG) if ORACLE_CONFIG.exists() else SimConfig()
        self.source = SimSource(self.legs, config, params.seed, TICK_SECONDS)
        self.t2: dt.datetime | None = None
        self.bad_turn = 0
        self.mechanism = params.mechanism
        self.by_batch = params.mechanism in ("batch", "both")
        self.min_order = 0
        self.expected_book: list[int] = []  # a cut's book, as the model says, and its orders before it
        self.cut_orders: dict[int, model.Order] = {}
        self.jumps: dict = {}  # leg -> the factor its price jumps multiply the oracle's walk by (shorting)
        self.expected_liquidations: list = []
        self.expected_released: list[tuple[int, int]] = []  # orders a deleveraging cancels (user id, order id)
        self.cut_pending: set[int] = set()  # liquidated participants waiting for the cut's buy-back batch
        self.tape: list[fixing_model.Tape] = []  # every tick stored, as the fixing model reads them

    # ------------------------------------------------------------ the run

    def run(self) -> SimulationResult:
        with clock.frozen(T0):
            self._setup()
            started = time.perf_counter()
            if self.progress is not None:
                self.progress(0, self.params.steps)
            for step in range(1, self.params.steps + 1):
                self.step = step
                self.where = f"step {step}"
                clock.advance(int(self.rng.integers(0, 4)))
                if step % self.params.tick_every == 0:
                    self._store_tick()
                    if self._shorting_on():  # the scheduler's step after the ticks
                        self._execute(self._liquidation_action())
                if self.by_batch:
                    self._scheduler_cut()
                self._execute(self._choose())
                if self.params.replay_every and step % self.params.replay_every == 0:
                    self._check_replay()
                self.result.steps_done = step
                if self.progress is not None:
                    self.progress(step, self.params.steps)
            self.where = f"settlement (after step {self.step})"
            self._settle()
            self.result.elapsed = time.perf_counter() - started
            self._final_checks()
        return self.result

    def _setup(self) -> None:
        if Session.objects.filter(id=self.sid).exists() or store.head(self.stream) is not None:
            raise ValueError(f"session {self.sid} already exists: pick another --session-id or use a fresh database")
        User = get_user_model()
        permission = Permission.objects.get(codename="add_session", content_type__app_label="markets")
        for name in [ORGANISER, OUTSIDER, *self.traders, *self.makers]:
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            if name == ORGANISER:
                user.user_permissions.add(permission)
                user = User.objects.get(pk=user.pk)  # drop the permission cache
            self.users[name] = user
        q = [
            int(self.rng.integers(50, 500)) * domain.QTY_SCALE * self.params.participants
            + int(self.rng.integers(0, domain.QTY_SCALE))
            for _ in self.legs
        ]
        kwargs: dict = {"mechanism": self.mechanism}
        if self.by_batch:
            kwargs |= {"batch_seconds": self.params.batch_seconds, "max_orders": self.params.max_orders}
        if self._shorting_on():
            p = self.params
            kwargs |= {"short_limit": p.short_limit, "margin_band": p.margin_band, "initial_margin": p.initial_margin}
        if self.timed:  # manual settlement is disabled here: settle by the clock instead
            self.t2 = T0 + dt.timedelta(days=365)
            kwargs |= {"end_mode": Session.EndMode.TIMED, "t2": self.t2}
        org = self.users[ORGANISER]
        before = self._last_seq()
        try:
            services.create_session(
                org,
                session_id=self.sid,
                title=f"Simulation, seed {self.params.seed}",
                legs=self.legs,
                q=[_text(x, domain.QTY_DP) for x in q],
                fixing_rule=fixing_model.RULES[self.params.fixing],
                **kwargs,
            )
            for name in self.holders:
                services.join_session(self.users[name], self.sid, self.roles[name])
            services.open_session(org, self.sid)
        except DomainError as exc:  # e.g. a --session-id the services refuse
            raise ValueError(f"cannot set up session {self.sid}: {exc.message}") from None
        self.q = Session.objects.get(id=self.sid).q
        self.min_order = Session.objects.get(id=self.sid).min_order or 0
        if self.q != q:
            raise self._violation("setup", f"q stored as {self.q}, sent {q}", self._events_after(before))
        self.status = Session.Status.OPEN
        self.matrix = projections.holdings_matrix(self.sid)
        expected = domain.pro_rata(q, self.holders)
        if self.matrix != expected:
            raise self._violation("setup", "the opening allocation is not pro rata", self._events_after(before))
        self._check_invariants("setup", self._events_after(before))
        self.result.events_written = store.head(self.stream).version
        self._store_tick()

    # ------------------------------------------------------------ helpers

    def _pick(self, items: Sequence):
        return items[int(self.rng.integers(len(items)))]

    def _event_count(self) -> int:
        return Event.objects.count()

    def _last_seq(self) -> int:
        return Event.objects.aggregate(m=Max("seq"))["m"] or 0

    def _events_after(self, seq: int) -> list[Event]:
        return list(Event.objects.filter(seq__gt=seq).order_by("seq"))

    def _held(self, user: str, leg: str) -> int:
        return self.matrix[user][self.legs.index(leg)]

    def _other(self, *exclude: str, include_org: bool = True) -> str:
        """Someone who is not any of `exclude`: another holder, the organiser or the outsider."""
        pool = [u for u in self.holders if u not in exclude]
        pool += [ORGANISER, OUTSIDER] if include_org else [OUTSIDER]
        return self._pick(pool)

    # ------------------------------------------------------------ the facts the reference model reads

    def _market(self) -> model.Market:
        now = clock.now()
        t2 = self.t2 if self.timed else None
        phase = domain.session_phase(self.status, "timed" if self.timed else "manual", t2, now)
        if not self.by_batch:
            return model.Market(
                self.legs, self.roles, self.matrix, phase, now, mechanism=self.mechanism, shorting=self._shorting_fact()
            )
        session = Session.objects.values("next_cut_at", "max_orders", "min_order", "paused_at").get(id=self.sid)
        resting: dict[str, int] = {}
        for order in self._orders(status="resting"):
            resting[order.owner] = resting.get(order.owner, 0) + 1
        return model.Market(
            self.legs, self.roles, self.matrix, phase, now, session["paused_at"] is not None, self.mechanism,
            self._reserved(), resting, session["max_orders"], session["min_order"], session["next_cut_at"], t2,
            self._shorting_fact(),
        )  # fmt: skip

    @staticmethod
    def _rfq_fact(row: dict) -> model.Rfq:
        return model.Rfq(row["id"], row["taker"], row["give_leg"], row["get_leg"], row["quantity"], row["status"])

    @staticmethod
    def _quote_fact(row: dict) -> model.Quote:
        rfq = model.Rfq(
            row["rfq_id"], row["taker"], row["give_leg"], row["get_leg"], row["quantity"], row["rfq_status"]
        )
        return model.Quote(row["id"], rfq, row["maker"], row["rate"], row["expires_at"], row["status"])

    # ------------------------------------------------------------ running one action and checking

    def _execute(self, action: _Action) -> object:
        count_before = self._event_count()
        seq_before = self._last_seq()
        before = {u: list(row) for u, row in self.matrix.items()}
        refusal: DomainError | None = None
        outcome = None
        try:
            outcome = action.run()
        except DomainError as exc:
            refusal = exc
        except Exception as exc:
            raise self._violation(
                action.label, f"crashed with {type(exc).__name__}: {exc}", self._events_after(seq_before)
            ) from exc
        if self.params.fault_at == self.step and self.where.startswith("step"):
            self._corrupt_one_holding()
        if self.after_action is not None:
            self.after_action(self, self.step)
        written = self._events_after(seq_before)
        counts = self.result.actions[action.kind]
        if refusal is None:
            counts.accepted += 1
        else:
            counts.rejected += 1
            counts.on_purpose += action.on_purpose
            self.result.codes[refusal.code] += 1
        self.result.events_written += len(written)
        self._check_invariants(action.label, written)
        if refusal is not None:
            if written or self._event_count() != count_before:
                raise self._violation(action.label, f"refused ({refusal.code}) but wrote events", written)
            if self.matrix != before:
                raise self._violation(action.label, f"refused ({refusal.code}) but changed the holdings", written)
            if not action.expect:
                raise self._violation(
                    action.label, f"refused unexpectedly: {refusal.code}: {refusal.message}", self._head_events()
                )
            if refusal.code not in action.expect:
                raise self._violation(
                    action.label,
                    f"refused with {refusal.code} ({refusal.message}), expected one of {sorted(action.expect)}",
                    self._head_events(),
                )
            return None
        if action.expect:
            raise self._violation(
                action.label, f"accepted, but it should have been refused with one of {sorted(action.expect)}", written
            )
        if (action.writes is not None and len(written) != action.writes) or any(
            e.stream != self.stream for e in written
        ):
            raise self._violation(
                action.label, f"wrote {len(written)} events (expected {action.writes} on {self.stream})", written
            )
        trades = [e for e in written if e.type == "TradeExecuted"]
        cuts = [e for e in written if e.type == "BatchCleared"]
        if action.kind == "liquidate":
            self._check_liquidation(action.label, written, before)
        elif trades:
            self._check_trade(action.label, trades[-1], before)
        elif cuts:
            self._check_cut(action.label, cuts[-1], before, self.cut_orders)
        elif self.matrix != before:
            raise self._violation(action.label, "holdings changed without a trade", written)
        return outcome

    def _check_invariants(self, label: str, written: list[Event]) -> None:
        """1. conservation, 2. non-negative, and the projection stamped with the stream's head."""
        self.matrix = projections.holdings_matrix(self.sid)
        events = written or self._head_events()
        if sorted(self.matrix) != self.holders:
            raise self._violation(label, f"holders in the projection are {sorted(self.matrix)}", events)
        try:
            domain.check_conservation(self.matrix, self.q)
            self._check_bounds() if self._shorting_on() else domain.check_non_negative(self.matrix)
        except domain.InvariantViolation as exc:
            raise self._violation(label, exc.message, events) from None
        session = Session.objects.values("status", "version", "last_seq").get(id=self.sid)
        head = store.head(self.stream)
        if (session["version"], session["last_seq"]) != (head.version, head.seq):
            raise self._violation(
                label,
                f"projection at v{session['version']}/seq {session['last_seq']}, stream head v{head.version}/seq {head.seq}",
                events,
            )
        self.status = session["status"]
        if self.by_batch:
            self._check_reservations(label, events)

    def _check_trade(self, label: str, event: Event, before: dict[str, list[int]]) -> None:
        """3. The trade's deltas sum to zero, match its quantities, and are exactly what the holdings moved."""
        d = event.data
        try:
            domain.check_zero_sum(d["taker_deltas"], d["maker_deltas"])
        except domain.InvariantViolation as exc:
            raise self._violation(label, exc.message, [event]) from None
        if d["get_qty"] != domain.trade_receive(d["give_qty"], d["rate"]):
            raise self._violation(label, "get quantity is not floor(give x rate)", [event])
        expected = {u: list(row) for u, row in before.items()}
        names = {user.pk: name for name, user in self.users.items()}
        taker, maker = names[d["taker_id"]], names[d["maker_id"]]
        for who, deltas in ((taker, d["taker_deltas"]), (maker, d["maker_deltas"])):
            expected[who] = [x + dx for x, dx in zip(expected[who], deltas, strict=True)]
        if self.matrix != expected:
            moved = {
                u: [a - b for a, b in zip(self.matrix[u], before[u], strict=True)]
                for u in self.holders
                if self.matrix[u] != before[u]
            }
            raise self._violation(
                label,
                f"holdings moved by {moved}, but the trade says taker {taker} {d['taker_deltas']}, "
                f"maker {maker} {d['maker_deltas']}",
                [event],
            )
        self.result.trades += 1

    def _check_replay(self) -> None:
        problems = projections.diff(projections.snapshot(self.sid), projections.rebuild(self.sid))
        if problems:
            raise self._violation(
                "replay", "replay differs from the projection: " + "; ".join(problems[:5]), self._head_events()
            )

    def _head_events(self) -> list[Event]:
        head = store.head(self.stream)
        return [head] if head is not None else []

    def _violation(self, label: str, problem: str, events: Sequence[Event]) -> SimulationError:
        return SimulationError(
            seed=self.params.seed, step=self.step, where=self.where, action=label, problem=problem, events=events
        )

    def _corrupt_one_holding(self) -> None:
        """Testing aid (--inject-fault): add one base unit to a holding behind the services' back."""
        participant = Participant.objects.get(session_id=self.sid, username=self.holders[0])
        Holding.objects.filter(participant=participant, leg_index=0).update(qty=F("qty") + 1)


def run(params: SimParams, **kwargs) -> SimulationResult:
    return Simulation(params, **kwargs).run()


def event_hashes(session_id: str) -> list[tuple[int, int, str, str]]:
    """(seq, version, type, hash) of every event of the session's stream, for comparing two runs."""
    return [(e.seq, e.version, e.type, e.hash) for e in store.iter_stream(stream_name(session_id))]
