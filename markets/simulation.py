"""A seeded, repeatable market driven through the real services and database (`manage.py simulate`).

One run: users sim-org (organiser), sim-t1.. (traders), sim-m1.. (makers) and sim-eve (an outsider)
-> a manual session `sim-<seed>` over `legs` legs, opened pro rata -> `steps` actions -> settlement at
the oracle's fixing -> full replay and audit. Every action goes through `markets.services`, exactly as
a browser or the API would send it, including bad inputs on purpose (garbage numbers, the wrong user,
expired or dead quotes, too little inventory, the same leg twice...).

Before each action the simulator predicts, from the stored projection, which refusals apply; an action
with none must succeed, one with some must fail with one of those codes. After every action it checks:
1. conservation: each leg sums to q exactly; 2. no negative holding; 3. the last TradeExecuted event is
zero-sum and moved the holdings by exactly its deltas; and a refused action wrote nothing (Event count,
holdings and the session's version unchanged). At the end: 4. sum of payouts == q . S, the replay of the
stream equals the stored projection, and `audit.verify_session` passes. The first violation raises
SimulationError naming the seed, the step and the events involved.

Repeatable: all randomness comes from `numpy.random.default_rng(seed)` (the oracle's SimSource has its
own generator from the same seed), all time from the frozen ledger clock starting at T0, and every id is
derived from the database. RFQ, quote, trade and tick ids are global (max + 1), so two runs give the same
ledger (the same head hash) only in two fresh databases.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import F, Max

from ledger import clock, store
from ledger.models import Event
from markets import audit, domain, projections, services
from markets.errors import DomainError
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Settlement, stream_name
from oracle.models import Tick
from oracle.sources import SimConfig, SimSource, load_config

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
SYMBOLS = (
    "AAPL", "NVDA", "META", "ORCL", "MSFT", "AMZN", "GOOG", "TSLA",
    "AMD", "INTC", "IBM", "CSCO", "ADBE", "CRM", "QCOM", "TXN",
)  # fmt: skip
ORGANISER = "sim-org"
OUTSIDER = "sim-eve"
ACTIONS = ("rfq", "quote", "accept", "cancel", "withdraw", "expire", "settle")
ORACLE_CONFIG = Path(settings.BASE_DIR) / "oracle" / "configs" / "default.json"
TICK_SECONDS = 60.0  # market seconds the oracle's walk moves between two stored ticks

# Mix of intents per step (weights). The bad ones are refused on purpose; their kinds take turns.
VALID_MIX = {"rfq": 20, "quote": 24, "accept": 18, "cancel": 5, "withdraw": 5, "expire": 5}
BAD_WEIGHT = 23
BAD_KINDS = (
    "rfq_bad_qty", "rfq_same_leg", "rfq_unknown_leg", "rfq_insufficient", "rfq_wrong_user",
    "quote_bad_rate", "quote_bad_ttl", "quote_wrong_user", "quote_closed_rfq", "quote_unknown_rfq",
    "quote_too_small",
    "accept_wrong_user", "accept_expired", "accept_not_live", "accept_unknown",
    "cancel_wrong_user", "cancel_closed",
    "withdraw_wrong_user", "withdraw_not_live",
)  # fmt: skip
GARBAGE_QTY = ("NaN", "-5", "abc", "1e400", "0", "", "0.0000001", "inf", "1_0.5.3", "   ", "1000000001", "12,5", None)
GARBAGE_RATE = ("0", "-0.5", "nan", "-inf", "x", "1000001", "0.000000001", "", None, "1e-9", "0x10")
GARBAGE_TTL = (0, -5, 86401, "soon", "1.5", "")
GARBAGE_IDS = ("abc", -1, 10**9, "", "1; DROP TABLE", 10**30)


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
    elapsed: float = 0.0
    head_hash: str = ""
    head_version: int = 0
    head_seq: int = 0
    prices: dict[str, int] = field(default_factory=dict)
    payout_total: str = ""
    verified: bool = False

    @property
    def ops(self) -> int:
        return sum(c.attempted for c in self.actions.values())

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else 0.0

    def table(self) -> str:
        p = self.params
        lines = [
            f"simulation {p.sid}: seed {p.seed}, {p.participants} participants "
            f"(traders {p.traders}, makers {p.makers}), {p.legs} legs, {self.steps_done} steps",
            "",
            f"  {'action':<10} {'attempted':>9} {'accepted':>9} {'rejected':>9} {'on purpose':>11}",
        ]
        total = ActionCount()
        for name in ACTIONS:
            c = self.actions[name]
            total.accepted += c.accepted
            total.rejected += c.rejected
            total.on_purpose += c.on_purpose
            lines.append(f"  {name:<10} {c.attempted:>9} {c.accepted:>9} {c.rejected:>9} {c.on_purpose:>11}")
        lines.append(
            f"  {'total':<10} {total.attempted:>9} {total.accepted:>9} {total.rejected:>9} {total.on_purpose:>11}"
        )
        lines.append("")
        codes = ", ".join(f"{code} {n}" for code, n in sorted(self.codes.items())) or "none"
        prices = " ".join(f"{leg}={domain.price_str(v)}" for leg, v in self.prices.items())
        lines += [
            f"  refusals by code  {codes}",
            f"  trades            {self.trades}",
            f"  events written    {self.events_written} (stream {stream_name(p.sid)} at v{self.head_version}, "
            f"last seq {self.head_seq})",
            f"  oracle ticks      {self.ticks_stored} (every {p.tick_every} steps, sim:{p.seed})",
            f"  settled at        {prices or '-'} (oracle fixing)",
            f"  payouts total     {self.payout_total or '-'} (== q.S)",
            "  checks            invariants 1-3 and no-write-on-refusal after every step; 4 at settlement; "
            f"replay == projection; verify_session {'ok' if self.verified else 'not run'}",
            f"  time              {self.elapsed:.2f} s, {self.ops_per_second:.1f} ops/s",
            f"  head hash         {self.head_hash}",
        ]
        return "\n".join(lines)


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
    text = format(domain.to_decimal(base, dp), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Simulation:
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
        kwargs: dict = {}
        if self.timed:  # manual settlement is disabled here: settle by the clock instead
            self.t2 = T0 + dt.timedelta(days=365)
            kwargs = {"end_mode": Session.EndMode.TIMED, "t2": self.t2}
        org = self.users[ORGANISER]
        before = self._last_seq()
        try:
            services.create_session(
                org,
                session_id=self.sid,
                title=f"Simulation, seed {self.params.seed}",
                legs=self.legs,
                q=[_text(x, domain.QTY_DP) for x in q],
                fixing_rule={"rule": "last"},
                **kwargs,
            )
            for name in self.holders:
                services.join_session(self.users[name], self.sid, self.roles[name])
            services.open_session(org, self.sid)
        except DomainError as exc:  # e.g. a --session-id the services refuse
            raise ValueError(f"cannot set up session {self.sid}: {exc.message}") from None
        self.q = Session.objects.get(id=self.sid).q
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

    def _store_tick(self) -> None:
        prices = next(self.source)
        at = clock.now()
        with transaction.atomic():
            Tick.objects.bulk_create(
                Tick(session_id=self.sid, symbol=leg, at=at, price=prices[leg], source=f"sim:{self.params.seed}")
                for leg in self.legs
            )
        self.prices = {leg: prices[leg] for leg in self.legs}
        self.result.ticks_stored += 1

    def _rfqs(self, *, closed: bool = False, **filters) -> list[dict]:
        qs = RFQ.objects.filter(session_id=self.sid, **filters)
        if closed:  # the 50 newest RFQs that are filled or cancelled
            qs = qs.exclude(status=RFQ.Status.OPEN).order_by("-id")[:50]
        else:
            qs = qs.order_by("id")
        rows = qs.values("id", "give_leg", "get_leg", "quantity", "status", "taker__username")
        return [{**row, "taker": row.pop("taker__username")} for row in rows]

    def _quotes(self, *, exclude_live: bool = False, **filters) -> list[dict]:
        qs = Quote.objects.filter(rfq__session_id=self.sid, **filters)
        if exclude_live:  # the 50 newest quotes that are no longer live
            qs = qs.exclude(status=Quote.Status.LIVE).order_by("-id")[:50]
        else:
            qs = qs.order_by("id")
        rows = qs.values(
            "id",
            "rfq_id",
            "rate",
            "expires_at",
            "status",
            "maker__username",
            "rfq__status",
            "rfq__taker__username",
            "rfq__quantity",
            "rfq__give_leg",
            "rfq__get_leg",
        )
        names = {
            "maker__username": "maker",
            "rfq__status": "rfq_status",
            "rfq__taker__username": "taker",
            "rfq__quantity": "quantity",
            "rfq__give_leg": "give_leg",
            "rfq__get_leg": "get_leg",
        }
        return [{names.get(k, k): v for k, v in row.items()} for row in rows]

    def _acceptable_quotes(self) -> list[dict]:
        """Live, unexpired quotes on open RFQs."""
        return self._quotes(status=Quote.Status.LIVE, rfq__status=RFQ.Status.OPEN, expires_at__gt=clock.now())

    def _held(self, user: str, leg: str) -> int:
        return self.matrix[user][self.legs.index(leg)]

    def _other(self, *exclude: str, include_org: bool = True) -> str:
        """Someone who is not any of `exclude`: another holder, the organiser or the outsider."""
        pool = [u for u in self.holders if u not in exclude]
        pool += [ORGANISER, OUTSIDER] if include_org else [OUTSIDER]
        return self._pick(pool)

    def _session_refusals(self) -> set[str]:
        if self.status == Session.Status.SETTLED:
            return {"session_settled"}
        if self.status == Session.Status.CREATED:
            return {"session_not_open"}
        return set()

    def _actor_refusals(self, actor: str) -> set[str]:
        return {"not_a_participant"} if actor not in self.roles else set()

    # ------------------------------------------------------------ predictions (mirror the services' rules)

    def _predict_rfq(self, actor: str, give: object, get: object, qty: object) -> set[str]:
        try:
            units = domain.parse_qty(qty)
        except DomainError as exc:
            return {exc.code}
        refusals = self._actor_refusals(actor)
        known = [str(leg).strip().upper() in self.legs for leg in (give, get)]
        if not all(known):
            refusals.add("unknown_leg")
        elif str(give).strip().upper() == str(get).strip().upper():
            refusals.add("same_leg")
        role = self.roles.get(actor)
        if role == "organiser":
            refusals.add("forbidden")
        refusals |= self._session_refusals()
        if role in domain.HOLDER_ROLES and known[0] and self._held(actor, str(give).strip().upper()) < units:
            refusals.add("insufficient_inventory")
        return refusals

    def _predict_quote(self, actor: str, rfq: dict | None, rate: object, ttl: object) -> set[str]:
        try:
            rate_units = domain.parse_rate(rate)
        except DomainError as exc:
            return {exc.code}
        try:
            ttl_ok = 1 <= int(str(ttl)) <= services.MAX_QUOTE_TTL
        except ValueError:
            ttl_ok = False
        if not ttl_ok:
            return {"invalid_ttl"}
        if rfq is None:
            return {"rfq_not_found"}
        refusals = self._actor_refusals(actor)
        if actor in self.roles and self.roles[actor] != "maker":
            refusals.add("not_maker")
        if rfq["taker"] == actor:
            refusals.add("own_rfq")
        refusals |= self._session_refusals()
        if rfq["status"] != RFQ.Status.OPEN:
            refusals.add("rfq_closed")
        receive = domain.trade_receive(rfq["quantity"], rate_units)
        if receive <= 0:
            refusals.add("trade_too_small")
        elif self.roles.get(actor) == "maker" and self._held(actor, rfq["get_leg"]) < receive:
            refusals.add("insufficient_inventory")  # a maker may not quote what it could never deliver
        return refusals

    def _predict_accept(self, actor: str, quote: dict | None) -> set[str]:
        if quote is None:
            return {"quote_not_found"}
        refusals = self._actor_refusals(actor)
        if actor != quote["taker"]:
            refusals.add("not_your_rfq")
        refusals |= self._session_refusals()
        if quote["rfq_status"] != RFQ.Status.OPEN:
            refusals.add("rfq_closed")
        if quote["status"] != Quote.Status.LIVE:
            refusals.add("quote_not_live")
        if quote["expires_at"] <= clock.now():
            refusals.add("quote_expired")
        receive = domain.trade_receive(quote["quantity"], quote["rate"])
        if receive <= 0:
            refusals.add("trade_too_small")
        if (
            self._held(quote["taker"], quote["give_leg"]) < quote["quantity"]
            or self._held(quote["maker"], quote["get_leg"]) < receive
        ):
            refusals.add("insufficient_inventory")
        return refusals

    def _predict_cancel(self, actor: str, rfq: dict | None) -> set[str]:
        if rfq is None:
            return {"rfq_not_found"}
        refusals = self._actor_refusals(actor)
        if actor != rfq["taker"]:
            refusals.add("not_your_rfq")
        refusals |= self._session_refusals()
        if rfq["status"] != RFQ.Status.OPEN:
            refusals.add("rfq_closed")
        return refusals

    def _predict_withdraw(self, actor: str, quote: dict | None) -> set[str]:
        if quote is None:
            return {"quote_not_found"}
        refusals = self._actor_refusals(actor)
        if actor != quote["maker"]:
            refusals.add("not_your_quote")
        refusals |= self._session_refusals()
        if quote["status"] != Quote.Status.LIVE:
            refusals.add("quote_not_live")
        elif quote["expires_at"] <= clock.now():
            refusals.add("quote_expired")
        return refusals

    # ------------------------------------------------------------ actions

    def _rfq_action(self, actor: str, give: object, get: object, qty: object, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "rfq",
            f"rfq by {actor}: give {qty!r} {give} for {get}",
            lambda: services.request_rfq(user, self.sid, give, get, qty),
            frozenset(self._predict_rfq(actor, give, get, qty)),
            on_purpose,
        )

    def _quote_action(
        self, actor: str, rfq: dict | None, rate: object, ttl: object, *, rfq_id: object = None, on_purpose=False
    ) -> _Action:
        user = self.users[actor]
        target = rfq["id"] if rfq is not None else rfq_id
        return _Action(
            "quote",
            f"quote by {actor} on rfq {target!r}: rate {rate!r}, ttl {ttl!r}",
            lambda: services.provide_quote(user, target, rate, ttl),
            frozenset(self._predict_quote(actor, rfq, rate, ttl)),
            on_purpose,
        )

    def _accept_action(self, actor: str, quote: dict | None, *, quote_id: object = None, on_purpose=False) -> _Action:
        user = self.users[actor]
        target = quote["id"] if quote is not None else quote_id
        return _Action(
            "accept",
            f"accept by {actor} of quote {target!r}",
            lambda: services.accept_quote(user, target),
            frozenset(self._predict_accept(actor, quote)),
            on_purpose,
        )

    def _cancel_action(self, actor: str, rfq: dict, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "cancel",
            f"cancel by {actor} of rfq {rfq['id']}",
            lambda: services.cancel_rfq(user, rfq["id"]),
            frozenset(self._predict_cancel(actor, rfq)),
            on_purpose,
        )

    def _withdraw_action(self, actor: str, quote: dict, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "withdraw",
            f"withdraw by {actor} of quote {quote['id']}",
            lambda: services.withdraw_quote(user, quote["id"]),
            frozenset(self._predict_withdraw(actor, quote)),
            on_purpose,
        )

    def _expire_action(self, quotes: list[dict]) -> _Action:
        """Move the clock just past the earliest expiry of a live quote (or a minute on)."""
        now = clock.now()
        if quotes:
            first = min(q["expires_at"] for q in quotes)
            seconds = int((first - now).total_seconds()) + 1
        else:
            seconds = 60
        return _Action("expire", f"clock +{seconds}s past quote expiry", lambda: clock.advance(seconds), writes=0)

    def _choose(self) -> _Action:
        kinds = [*VALID_MIX, "bad"]
        weights = np.array([*VALID_MIX.values(), BAD_WEIGHT], dtype=float)
        intent = kinds[int(self.rng.choice(len(kinds), p=weights / weights.sum()))]
        if intent == "bad":  # the kinds take turns, so even a short run tries each of them
            kind = BAD_KINDS[self.bad_turn % len(BAD_KINDS)]
            self.bad_turn += 1
            action = self._bad(kind)
            if action is not None:
                return action
            intent = "rfq"
        action = getattr(self, f"_valid_{intent}")()
        return action if action is not None else self._valid_rfq()

    # ------------------------------------------------------------ the valid intents

    def _valid_rfq(self) -> _Action:
        """A holder asks to give 1-35% of one of its legs (as a person would type it) for another leg."""
        candidates = [u for u in self.holders if any(self.matrix[u])]
        taker = self._pick(candidates)
        owned = [leg for leg in self.legs if self._held(taker, leg) > 0]
        give = self._pick(owned)
        get = self._pick([leg for leg in self.legs if leg != give])
        held = self._held(taker, give)
        units = held * int(self.rng.integers(1, 36)) // 100
        dp = self._pick((0, 2, 6))
        step = 10 ** (domain.QTY_DP - dp)
        units = units - units % step or max(units, 1)
        return self._rfq_action(taker, give, get, _text(units, domain.QTY_DP))

    def _fair_rate(self, give: str, get: str) -> int:
        """The oracle's cross rate less a maker's edge of -0.3% to +2%, in rate base units."""
        edge = int(self.rng.integers(-30, 200))
        rate = self.prices[give] * domain.RATE_SCALE * (10_000 - edge) // (self.prices[get] * 10_000)
        return max(rate, 1)

    def _valid_quote(self) -> _Action | None:
        rfqs = [r for r in self._rfqs(status=RFQ.Status.OPEN) if any(m != r["taker"] for m in self.makers)]
        if not rfqs:
            return None
        rfq = self._pick(rfqs)
        makers = [m for m in self.makers if m != rfq["taker"]]
        rate = self._fair_rate(rfq["give_leg"], rfq["get_leg"])
        receive = domain.trade_receive(rfq["quantity"], rate)
        able = [m for m in makers if self._held(m, rfq["get_leg"]) >= receive]
        maker = self._pick(able if able and self.rng.random() < 0.9 else makers)  # mostly quote what they hold
        ttl = int(self.rng.integers(5, 121))
        return self._quote_action(maker, rfq, _text(rate, domain.RATE_DP), ttl)

    def _valid_accept(self) -> _Action | None:
        quotes = self._acceptable_quotes()
        if not quotes:
            return None
        rfq_id = self._pick(sorted({q["rfq_id"] for q in quotes}))
        best = max((q for q in quotes if q["rfq_id"] == rfq_id), key=lambda q: (q["rate"], -q["id"]))
        return self._accept_action(best["taker"], best)

    def _valid_cancel(self) -> _Action | None:
        rfqs = self._rfqs(status=RFQ.Status.OPEN)
        if not rfqs:
            return None
        rfq = self._pick(rfqs)
        return self._cancel_action(rfq["taker"], rfq)

    def _valid_withdraw(self) -> _Action | None:
        quotes = self._quotes(status=Quote.Status.LIVE)
        if not quotes:
            return None
        quote = self._pick(quotes)
        return self._withdraw_action(quote["maker"], quote)

    def _valid_expire(self) -> _Action:
        return self._expire_action(self._acceptable_quotes())

    # ------------------------------------------------------------ bad inputs, on purpose

    def _bad(self, kind: str) -> _Action | None:
        holders_with_stock = [u for u in self.holders if any(self.matrix[u])]
        if kind == "rfq_bad_qty":
            taker = self._pick(self.holders)
            give, get = self._two_legs()
            return self._rfq_action(taker, give, get, self._pick(GARBAGE_QTY), on_purpose=True)
        if kind == "rfq_same_leg":
            taker = self._pick(holders_with_stock)
            leg = self._pick([leg for leg in self.legs if self._held(taker, leg) > 0])
            return self._rfq_action(taker, leg, leg, "1", on_purpose=True) if self._held(taker, leg) >= 10**6 else None
        if kind == "rfq_unknown_leg":
            taker = self._pick(self.holders)
            give, _ = self._two_legs()
            unknown = self._pick(("ZZZZ", "", "aapl.x", "NOT A LEG", "X" * 40))
            pair = (give, unknown) if self.rng.integers(2) else (unknown, give)
            return self._rfq_action(taker, *pair, "1", on_purpose=True)
        if kind == "rfq_insufficient":
            taker = self._pick(self.holders)
            give, get = self._two_legs()
            units = self._held(taker, give) + int(self.rng.integers(1, 10 * domain.QTY_SCALE))
            return self._rfq_action(taker, give, get, _text(units, domain.QTY_DP), on_purpose=True)
        if kind == "rfq_wrong_user":
            give, get = self._two_legs()
            return self._rfq_action(self._pick((ORGANISER, OUTSIDER)), give, get, "1", on_purpose=True)
        open_rfqs = self._rfqs(status=RFQ.Status.OPEN)
        if kind in ("quote_bad_rate", "quote_bad_ttl", "quote_wrong_user", "quote_too_small"):
            if not open_rfqs:
                return None
            rfq = self._pick(open_rfqs)
            makers = [m for m in self.makers if m != rfq["taker"]]
            maker = self._pick(makers) if makers else self.makers[0]
            rate = _text(self._fair_rate(rfq["give_leg"], rfq["get_leg"]), domain.RATE_DP)
            if kind == "quote_bad_rate":
                return self._quote_action(maker, rfq, self._pick(GARBAGE_RATE), 30, on_purpose=True)
            if kind == "quote_bad_ttl":
                return self._quote_action(maker, rfq, rate, self._pick(GARBAGE_TTL), on_purpose=True)
            if kind == "quote_too_small":
                if rfq["quantity"] >= domain.RATE_SCALE:
                    return None
                return self._quote_action(maker, rfq, "0.00000001", 30, on_purpose=True)
            own = [r for r in open_rfqs if r["taker"] in self.makers]
            if own and self.rng.integers(3) == 0:
                rfq = self._pick(own)
                rate = _text(self._fair_rate(rfq["give_leg"], rfq["get_leg"]), domain.RATE_DP)
                return self._quote_action(rfq["taker"], rfq, rate, 30, on_purpose=True)
            wrong = self._pick([*self.traders, ORGANISER, OUTSIDER])
            return self._quote_action(wrong, rfq, rate, 30, on_purpose=True)
        if kind == "quote_closed_rfq":
            closed = self._rfqs(closed=True)
            if not closed:
                return None
            rfq = self._pick(closed)
            makers = [m for m in self.makers if m != rfq["taker"]]
            if not makers:
                return None
            rate = _text(self._fair_rate(rfq["give_leg"], rfq["get_leg"]), domain.RATE_DP)
            return self._quote_action(self._pick(makers), rfq, rate, 30, on_purpose=True)
        if kind == "quote_unknown_rfq":
            maker = self._pick(self.makers)
            return self._quote_action(maker, None, "1", 30, rfq_id=self._pick(GARBAGE_IDS), on_purpose=True)
        if kind == "accept_wrong_user":
            quotes = self._acceptable_quotes()
            if not quotes:
                return None
            quote = self._pick(quotes)
            return self._accept_action(self._other(quote["taker"]), quote, on_purpose=True)
        if kind == "accept_expired":
            expired = self._quotes(status=Quote.Status.LIVE, rfq__status=RFQ.Status.OPEN, expires_at__lte=clock.now())
            if not expired:
                live = self._acceptable_quotes()
                if not live:
                    return None
                quote = self._pick(live)
                clock.advance(int((quote["expires_at"] - clock.now()).total_seconds()))  # lands exactly on it
                expired = [quote]
            quote = self._pick(expired)
            return self._accept_action(quote["taker"], quote, on_purpose=True)
        if kind == "accept_not_live":
            dead = self._quotes(exclude_live=True)
            if not dead:
                return None
            quote = self._pick(dead)
            return self._accept_action(quote["taker"], quote, on_purpose=True)
        if kind == "accept_unknown":
            actor = self._pick(self.holders)
            return self._accept_action(actor, None, quote_id=self._pick(GARBAGE_IDS), on_purpose=True)
        if kind == "cancel_wrong_user":
            if not open_rfqs:
                return None
            rfq = self._pick(open_rfqs)
            return self._cancel_action(self._other(rfq["taker"]), rfq, on_purpose=True)
        if kind == "cancel_closed":
            closed = self._rfqs(closed=True)
            if not closed:
                return None
            rfq = self._pick(closed)
            return self._cancel_action(rfq["taker"], rfq, on_purpose=True)
        if kind == "withdraw_wrong_user":
            quotes = self._quotes(status=Quote.Status.LIVE)
            if not quotes:
                return None
            quote = self._pick(quotes)
            return self._withdraw_action(self._other(quote["maker"]), quote, on_purpose=True)
        if kind == "withdraw_not_live":
            dead = self._quotes(exclude_live=True)
            if not dead:
                return None
            quote = self._pick(dead)
            return self._withdraw_action(quote["maker"], quote, on_purpose=True)
        raise AssertionError(f"unknown bad kind {kind}")

    def _two_legs(self) -> tuple[str, str]:
        give = self._pick(self.legs)
        return give, self._pick([leg for leg in self.legs if leg != give])

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
        if len(written) != action.writes or any(e.stream != self.stream for e in written):
            raise self._violation(
                action.label, f"wrote {len(written)} events (expected {action.writes} on {self.stream})", written
            )
        trades = [e for e in written if e.type == "TradeExecuted"]
        if trades:
            self._check_trade(action.label, trades[-1], before)
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
            domain.check_non_negative(self.matrix)
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

    # ------------------------------------------------------------ settlement and the final proof

    def _settle(self) -> None:
        self.step = self.params.steps
        trader = self._pick(self.traders)
        org = self.users[ORGANISER]
        settled = {"session_settled"} if self.status == Session.Status.SETTLED else set()
        self._execute(
            _Action(
                "settle",
                f"settle by {trader}",
                lambda: services.settle_session(self.users[trader], self.sid),
                frozenset({"not_organiser"} | settled),
                on_purpose=True,
            )
        )
        garbage = dict.fromkeys(self.legs, self._pick(("abc", "-1", "NaN", "1e99", "")))
        bad_price_codes = {"invalid_number"} if not self.timed else {"manual_disabled", "not_due"}
        self._execute(
            _Action(
                "settle",
                f"settle by {ORGANISER} at prices {garbage}",
                lambda: services.settle_session(org, self.sid, prices=garbage),
                frozenset(bad_price_codes),
                on_purpose=True,
            )
        )
        if self.timed:
            clock.set_time(max(clock.now(), self.t2))
        self._store_tick()
        self._execute(
            _Action(
                "settle",
                "settle at the oracle's fixing",
                lambda: services.settle_session(None, self.sid),
                writes=2 if self.timed else 1,  # a timed session's trading closes in the same command
            )
        )
        self._check_settlement()
        self._execute(
            _Action(
                "settle",
                "settle again",
                lambda: services.settle_session(None, self.sid),
                frozenset({"already_settled"}),
                on_purpose=True,
            )
        )
        taker = self._pick(self.holders)
        give, get = self._two_legs()
        self._execute(self._rfq_action(taker, give, get, "0.000001", on_purpose=True))

    def _check_settlement(self) -> None:
        """4. payout_i == x_i . S and sum payouts == q . S exactly, at the last stored oracle prices."""
        settlement = Settlement.objects.get(session_id=self.sid)
        events = self._head_events()
        prices = [settlement.prices[leg] for leg in self.legs]
        if dict(zip(self.legs, prices, strict=True)) != self.prices:
            raise self._violation("settlement", f"settled at {settlement.prices}, the fixing is {self.prices}", events)
        paid = domain.payouts(self.matrix, prices)
        try:
            domain.check_settlement_sum(paid, self.q, prices)
        except domain.InvariantViolation as exc:
            raise self._violation("settlement", exc.message, events) from None
        stored = dict(
            Payout.objects.filter(session_id=self.sid).values_list("participant__username", "amount").order_by("id")
        )
        if stored != {u: domain.money_str(v) for u, v in paid.items()}:
            raise self._violation("settlement", f"payouts stored {stored} differ from x.S", events)
        if Decimal(settlement.total) != Decimal(domain.money_str(domain.payout(self.q, prices))):
            raise self._violation("settlement", f"total {settlement.total} differs from q.S", events)
        self.result.prices = dict(self.prices)
        self.result.payout_total = settlement.total

    def _final_checks(self) -> None:
        self.where = f"final checks (after step {self.step})"
        self._check_replay()
        report = audit.verify_session(self.sid)
        if not report.ok:
            raise self._violation("verify_session", "; ".join(report.problems[:5]), self._head_events())
        head = store.head(self.stream)
        self.result.verified = True
        self.result.head_hash = head.hash
        self.result.head_version = head.version
        self.result.head_seq = head.seq


def run(params: SimParams, **kwargs) -> SimulationResult:
    return Simulation(params, **kwargs).run()


def event_hashes(session_id: str) -> list[tuple[int, int, str, str]]:
    """(seq, version, type, hash) of every event of the session's stream, for comparing two runs."""
    return [(e.seq, e.version, e.type, e.hash) for e in store.iter_stream(stream_name(session_id))]
