"""The stateful test with bounded shorting on: random RFQ sequences where holders go short within the
limit, oracle ticks that jump far beyond the margin band, the scheduler's liquidation runs, and settlement
at fixings outside the box. The reference model (`markets.simulation.model` with `margin_model`) predicts
every refusal (`short_limit`, `margin`, with reduce-only), who a liquidation run takes and what
auto-deleveraging moves, and what settlement pays after the haircut. After every step: the holdings are
the model's, each leg sums to q (1), nobody is below minus its limit and the pool's shorts of each leg are
within the cap (2), the model's refusals wrote nothing; trades are zero-sum (3, checked by the services and
again by verify_ledger); at settlement sum payouts = q.S (4) and none is below 0 (5); at the end
verify_ledger is clean."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import domain, services
from markets.domain import margin as rules
from markets.models import Payout, Settlement
from markets.simulation import margin_model, model
from markets.tests.test_stateful import HOLDERS, LEGS, PRICES, ROLES, T0, MarketMachine, Q, _session_numbers
from oracle.models import Tick

SHORTING = {"short_limit": "0.3", "margin_band": "0.3", "initial_margin": "0.5"}  # a wide box: margin binds
SETTINGS = rules.margin_settings(**SHORTING)
CAPS = SETTINGS.caps(Q)
SQUEEZE = 10  # a fixing's jump of the leg the pool is most short of: far outside any box
# Price moves per tick: mostly inside the band, some far beyond it (a squeeze, a crash).
moves = st.sampled_from(
    [Fraction(1), Fraction(1), Fraction(21, 20), Fraction(19, 20), Fraction(6, 5), Fraction(8, 5), Fraction(5, 2),
     Fraction(1, 2), Fraction(3, 10)]
)  # fmt: skip


class ShortingMachine(MarketMachine):
    """MarketMachine's rules (RFQs, quotes, accepts, cancels, withdrawals, pauses, time) in a shorting
    session, plus going short, ticks and liquidation runs; its settlement knows the haircut."""

    @initialize()
    def start(self):
        self.sid = f"ss{next(_session_numbers)}"
        clock.set_time(T0)
        self.now = T0
        create_demo(self.users, self.sid, **SHORTING)
        self.prices = dict(PRICES)
        Tick.objects.bulk_create(
            Tick(session_id=self.sid, symbol=leg, at=T0, price=p, source="test") for leg, p in self.prices.items()
        )
        self.ids = {name: self.users[name].pk for name in HOLDERS}
        self.book = {u: list(row) for u, row in domain.pro_rata(Q, HOLDERS).items()}
        self.rfqs: dict[int, dict] = {}
        self.quotes: dict[int, dict] = {}
        self.settled = False
        self.paused = False
        self.steps = 0

    def market(self) -> model.Market:
        shorting = margin_model.Shorting(SETTINGS, Q, [self.prices[leg] for leg in LEGS])
        phase = "settled" if self.settled else "open"
        return model.Market(LEGS, ROLES, self.book, phase, self.now, self.paused, shorting=shorting)

    # ------------------------------------------------------------ rules

    @rule(
        taker=st.sampled_from(HOLDERS),
        maker=st.sampled_from(["mm", "mm2"]),
        pair=st.permutations(LEGS).map(lambda p: p[:2]),
        share=st.sampled_from([10, 40, 70, 95, 100, 101]),
        edge=st.sampled_from([-300, 0, 0, 50, 2000, 9000]),
        wait=st.sampled_from([0, 0, 0, 61]),
    )
    def go_short(self, taker, maker, pair, share, edge, wait):
        """An RFQ giving more of a leg than the taker holds (share% of what it holds plus its short limit:
        101% is past it), a maker's quote near the fair rate (or a poor one, 20% or 90% under it, that may break the margin),
        and the accept, each command checked against the model."""
        give, get = pair
        maker = "mm2" if taker == maker else maker  # a maker shorting asks the other maker
        k = LEGS.index(give)
        units = (max(0, self.book[taker][k]) + CAPS[k]) * share // 100 + (1 if share > 100 else 0)
        units -= units % 10**4 if share <= 100 else 0
        if units <= 0:
            return
        rate = max(1, self.prices[give] * 10**8 * (10_000 - edge) // (self.prices[get] * 10_000))
        qty = (domain.qty_str(units), units)
        self.request_quote_accept(taker, maker, pair, qty, (domain.rate_str(rate), rate), 60, wait)
        self.log.append(f"short {share}")

    @precondition(lambda self: not self.settled)
    @rule(
        taker=st.sampled_from(HOLDERS),
        maker=st.sampled_from(["mm", "mm2"]),
        legs3=st.permutations(LEGS).map(lambda p: p[:3]),
        jump=st.sampled_from([Fraction(6, 5), Fraction(8, 5), Fraction(5, 2), Fraction(4)]),
    )
    def squeeze(self, taker, maker, legs3, jump):
        """A short, then its leg jumps in one tick (no liquidation run yet), then a short of another leg
        (the margin rule binds: reduce-only, or W below the requirement), then the liquidation run."""
        give, get, other = legs3
        self.go_short(taker, maker, (give, get), 95, 0, 0)
        self.tick([jump if leg == give else Fraction(1) for leg in LEGS], False)
        self.go_short(taker, maker, (other, get), 70, 0, 0)
        self.liquidate()

    @precondition(lambda self: not self.settled)
    @rule(factors=st.lists(moves, min_size=4, max_size=4), liquidate=st.booleans())
    def tick(self, factors, liquidate):
        """The oracle ticks every leg (some jump far beyond the band), and usually the scheduler's
        liquidation run follows, as run_oracle does."""
        self.now = clock.advance(1)
        self.prices = {leg: max(1, int(self.prices[leg] * f)) for leg, f in zip(LEGS, factors, strict=True)}
        Tick.objects.bulk_create(
            Tick(session_id=self.sid, symbol=leg, at=self.now, price=p, source="test") for leg, p in self.prices.items()
        )
        self.log.append("tick")
        if liquidate:
            self.liquidate()

    @rule()
    def liquidate(self):
        """The scheduler's liquidation run: exactly the model's participants taken, each AutoDeleveraged
        the model's plan; their open RFQs cancelled and live quotes withdrawn."""
        by_id = {self.ids[u]: row for u, row in self.book.items()}
        taken = [] if self.settled else margin_model.liquidations(by_id, [self.prices[leg] for leg in LEGS], SETTINGS)
        seq = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
        services.liquidate_due_sessions()
        written = list(Event.objects.filter(seq__gt=seq, stream=f"session-{self.sid}").order_by("seq"))
        assert [e.data["user_id"] for e in written if e.type == "PositionLiquidated"] == [t.user for t in taken]
        plans = [e.data["deltas_by_id"] for e in written if e.type == "AutoDeleveraged"]
        assert plans == [{str(u): row for u, row in sorted(t.plan.deltas.items())} for t in taken]
        names = {pk: name for name, pk in self.ids.items()}
        for one in taken:
            victim = names[one.user]
            for rfq_id, rfq in self.rfqs.items():
                if rfq["taker"] == victim and rfq["status"] == "open":
                    self.close_rfq(rfq_id, "cancelled")
            for quote in self.quotes.values():
                if quote["maker"] == victim and quote["status"] == "live":
                    quote["status"] = "withdrawn"
            for pk, deltas in one.plan.deltas.items():
                self.book[names[pk]] = [x + d for x, d in zip(self.book[names[pk]], deltas, strict=True)]
            self.log.append("liquidated")

    @precondition(lambda self: self.steps >= 25)
    @rule(
        who=st.sampled_from(["org", "org", "org", "alice"]),
        factors=st.lists(moves, min_size=4, max_size=4),
        squeeze=st.booleans(),
    )
    def settle(self, who, factors, squeeze):
        """Settlement at a fixing around the latest prices (some far outside the box; with `squeeze`, the
        leg the pool is most short of x10): x.S, haircut pro rata where some is below 0; every payout >= 0
        and their sum q.S exactly."""
        shorts = [sum(max(0, -row[k]) for row in self.book.values()) for k in range(len(LEGS))]
        if squeeze and max(shorts) > 0:
            factors = [f * (SQUEEZE if k == shorts.index(max(shorts)) else 1) for k, f in enumerate(factors)]
        prices = [max(1, int(self.prices[leg] * f)) for leg, f in zip(LEGS, factors, strict=True)]
        text = {leg: domain.price_str(p) for leg, p in zip(LEGS, prices, strict=True)}
        refusals = model.settle(self.market(), who, text)
        if self.run(lambda: services.settle_session(self.users[who], self.sid, prices=text), refusals) is None:
            return
        self.settled = True
        for q in self.quotes.values():
            if q["status"] == "live" and q["expires"] <= self.now:
                q["status"] = "expired"
        for rfq_id, rfq in self.rfqs.items():
            if rfq["status"] == "open":
                self.close_rfq(rfq_id, "lapsed")
        cut = margin_model.payouts({self.ids[u]: row for u, row in self.book.items()}, prices, Q)
        names = {pk: name for name, pk in self.ids.items()}
        paid = {p.participant.username: p for p in Payout.objects.filter(session_id=self.sid)}
        for pk, amount in cut.paid.items():
            assert paid[names[pk]].amount == domain.money_str(amount) and amount >= 0
            assert paid[names[pk]].gross == (domain.money_str(cut.gross[pk]) if cut.deficit else "")
        total = sum(x * p for x, p in zip(Q, prices, strict=True))
        assert sum(cut.paid.values()) == total
        settlement = Settlement.objects.get(session_id=self.sid)
        assert Decimal(settlement.total) == Decimal(domain.money_str(total)) == Decimal(settlement.expected)
        assert (settlement.deficit or "") == (domain.money_str(cut.deficit) if cut.deficit else "")
        self.log.append("haircut" if cut.deficit else "settled")

    @precondition(lambda self: False)
    @rule()
    def pause(self):
        """No pauses here (the machine above covers them): the steps go to shorting, prices and liquidation."""

    @precondition(lambda self: False)
    @rule()
    def resume(self):
        """Nothing to resume."""

    def teardown(self):
        """Every example ends settled (the fixing squeezes the leg the pool is most short of), then
        verify_ledger redoes the whole log: the bounds, liquidations, deleveraging and the haircut."""
        if hasattr(self, "sid") and not self.settled:
            self.settle("org", [Fraction(1)] * len(LEGS), True)
            assert self.settled
        super().teardown()

    # ------------------------------------------------------------ invariants

    @invariant()
    def holdings_match_the_model_and_are_conserved(self):
        """1 conservation, 2 nobody below minus its limit and the pool's shorts within the cap."""
        from markets import projections

        matrix = projections.holdings_matrix(self.sid)
        assert matrix == self.book
        for k, total in enumerate(Q):
            assert sum(row[k] for row in matrix.values()) == total, LEGS[k]
            assert min(row[k] for row in matrix.values()) >= -CAPS[k], LEGS[k]
            assert sum(max(0, -row[k]) for row in matrix.values()) <= CAPS[k], LEGS[k]


def test_random_shorting_sequences_keep_the_pool_fully_funded(users):
    ShortingMachine.users = users
    ShortingMachine.log = []
    run_state_machine_as_test(
        ShortingMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=True,
        ),
    )
    log = Counter(ShortingMachine.log)
    # The runs went short, met both refusals of shorting, liquidated and haircut, not only one of them.
    assert log["trade"] >= 10 and log["short_limit"] >= 1 and log["margin"] >= 1, log
    assert log["liquidated"] >= 1 and log["haircut"] >= 1, log
