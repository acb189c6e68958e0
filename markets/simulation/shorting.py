"""Bounded shorting in the simulator (`--short-limit`): traders who give legs they do not hold, within the
limit; oracle prices that jump (a leg x0.5 to x2 in one tick, now and then); after every tick the
scheduler's liquidation run (`services.liquidate_due_sessions`), predicted by the reference model
(`margin_model.liquidations`: who, and every unit auto-deleveraging moves) and checked event by event; invariant
2 as bounded shorting reads it (nobody below minus its limit, the pool's shorts of a leg within the cap);
and at settlement the haircut when the fixing lies outside the box (`margin_model.payouts`)."""

from __future__ import annotations

from fractions import Fraction

from django.db.models import F

from ledger.models import Event
from markets import domain, services
from markets.domain import liquidation
from markets.domain import margin as rules
from markets.domain import orders as order_rules
from markets.models import RFQ, Holding, Order, Participant, Quote, Session
from markets.simulation import margin_model
from markets.simulation.result import _Action, _text

JUMP_CHANCE = 0.3  # a tick moves one leg by a jump with this chance
JUMPS = (Fraction(1, 2), Fraction(7, 10), Fraction(13, 10), Fraction(8, 5), Fraction(2))
SQUEEZE = Fraction(4)  # the fixing's jump on the leg the pool is most short of: far outside any box


class ShortSelling:
    """Mixed into `Simulation` (its users, matrix, prices, rng, q and checks)."""

    def _shorting_on(self) -> bool:
        return bool(self.params.short_limit)

    def _margin_settings(self) -> rules.MarginSettings:
        p = self.params
        return rules.margin_settings(p.short_limit, p.margin_band or None, p.initial_margin or None)

    def _shorting_fact(self) -> margin_model.Shorting | None:
        if not self._shorting_on():
            return None
        return margin_model.Shorting(self._margin_settings(), self.q, [self.prices.get(leg) for leg in self.legs])

    # ------------------------------------------------------------ prices that jump

    def _jumped(self, prices: dict[str, int], *, fixing: bool = False) -> dict[str, int]:
        """The oracle's walk times each leg's jumps so far (a jump stays: the walk goes on from there). The
        fixing squeezes the leg the pool is most short of (x4, after trading: no liquidation runs between),
        so that settlement meets payouts below 0 and the haircut."""
        if not self._shorting_on():
            return prices
        shorts = [sum(max(0, -row[k]) for row in self.matrix.values()) for k in range(len(self.legs))]
        if fixing and max(shorts) > 0:
            leg = self.legs[shorts.index(max(shorts))]
            self.jumps[leg] = self.jumps.get(leg, Fraction(1)) * SQUEEZE
            self.result.jumps += 1
        elif not fixing and self.rng.random() < JUMP_CHANCE:
            leg = self._pick(self.legs)
            factor = JUMPS[int(self.rng.integers(len(JUMPS)))]
            self.jumps[leg] = self.jumps.get(leg, Fraction(1)) * factor
            self.result.jumps += 1
        return {leg: max(1, int(price * self.jumps.get(leg, Fraction(1)))) for leg, price in prices.items()}

    # ------------------------------------------------------------ the invariant 2 of shorting

    def _reserve_cap(self, k: int) -> int:
        """How far below zero a holding's reservations may reach (its short limit; 0 without shorting)."""
        return self._margin_settings().caps(self.q)[k] if self._shorting_on() else 0

    def _check_bounds(self) -> None:
        caps = self._margin_settings().caps(self.q)
        lows = [min(row[k] for row in self.matrix.values()) for k in range(len(self.legs))]
        shorts = [sum(max(0, -row[k]) for row in self.matrix.values()) for k in range(len(self.legs))]
        domain.check_short_bounds(lows, shorts, caps)

    # ------------------------------------------------------------ shorting traders

    def _valid_short(self) -> _Action | None:
        """A holder asks to give more of a leg than it holds: up to its short limit (now and then past it,
        on purpose, refused with short_limit)."""
        caps = self._margin_settings().caps(self.q)
        taker = self._pick(self.holders)
        k = int(self.rng.integers(len(self.legs)))
        give = self.legs[k]
        get = self._pick([leg for leg in self.legs if leg != give])
        room = self._held(taker, give) + caps[k]
        over = self.rng.random() < 0.1
        units = (
            room + int(self.rng.integers(1, domain.QTY_SCALE)) if over else room * int(self.rng.integers(5, 90)) // 100
        )
        if units <= 0:
            return None
        units -= units % 10**4 if units > 10**4 and not over else 0
        return self._rfq_action(taker, give, get, _text(units, domain.QTY_DP), on_purpose=over)

    # ------------------------------------------------------------ liquidation after the ticks

    def _liquidation_action(self) -> _Action:
        """The scheduler's liquidation run, with what the model says it writes: for each participant taken
        (W < 0 at the latest prices), its open RFQs cancelled and live quotes withdrawn, PositionLiquidated
        and AutoDeleveraged."""
        ids = {name: self.users[name].pk for name in self.holders}
        by_id = {ids[name]: row for name, row in self.matrix.items()}
        prices = [self.prices[leg] for leg in self.legs]
        pending = set(
            Participant.objects.filter(session_id=self.sid, liquidation_pending=True).values_list("user_id", flat=True)
        )
        # Waiting for its buy-back batch: a buy-back order (placed at the instant of its liquidation) rests.
        waiting = frozenset(
            Order.objects.filter(
                session_id=self.sid, status="resting", participant__liquidation_pending=True,
                placed_at=F("participant__liquidated_at"),
            ).values_list("participant__user_id", flat=True)
        )  # fmt: skip
        band = self._buy_back_band()
        # One whose buy-back orders never reached a batch gets no second buy-back: it is deleveraged at once.
        taken = margin_model.liquidations(
            by_id, prices, self._margin_settings(), waiting=waiting, buy_back_band=band, no_buy_back=pending
        )
        rfqs = {r["id"]: r["taker"] for r in self._rfqs(status=RFQ.Status.OPEN)}
        quotes = {q["id"]: (q["rfq_id"], q["maker"]) for q in self._quotes(status=Quote.Status.LIVE)}
        resting = self._orders(status="resting") if self.by_batch else []
        reserved = {
            (ids[name], k): amount for name, row in (self._reserved() if self.by_batch else {}).items()
            for k, amount in enumerate(row)
        }  # fmt: skip
        names = {pk: name for name, pk in ids.items()}
        rows = {u: list(row) for u, row in by_id.items()}
        writes = 0
        self.expected_released = []
        for one in taken:
            name = names[one.user]
            mine = [i for i, taker in rfqs.items() if taker == name]
            for i in mine:
                del rfqs[i]
            quotes = {i: q for i, q in quotes.items() if q[0] not in mine}
            writes += len(mine) + sum(1 for q in quotes.values() if q[1] == name)
            writes += sum(1 for o in resting if o.owner == name) + 1 + (len(one.orders) or 1)
            quotes = {i: q for i, q in quotes.items() if q[1] != name}
            self._take_out(resting, reserved, [o for o in resting if o.owner == name])
            if one.plan is not None:
                for u, deltas in one.plan.deltas.items():
                    rows[u] = [x + d for x, d in zip(rows[u], deltas, strict=True)]
                released = self._released(one.plan, rows, resting, reserved)
                self.expected_released.extend(released)
                writes += len(released)
        self.expected_liquidations = taken
        who = ", ".join(names[one.user] for one in taken) or "nobody"
        return _Action(
            "liquidate", f"liquidation run (the model takes {who})", services.liquidate_due_sessions, writes=writes
        )

    def _released(self, plan, rows: dict[int, list[int]], resting: list, reserved: dict) -> list[tuple[int, int]]:
        """The resting orders a deleveraging cancels, by the services' rule (`orders_released`: a holder's
        orders giving a leg it gave, newest first, until they fit what it now holds), taken out of `resting`
        and `reserved` ((user id, leg) -> units) as they go."""
        ids = {name: self.users[name].pk for name in self.holders}
        book: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for o in sorted(resting, key=lambda o: -o.id):
            book.setdefault((ids[o.owner], self.legs.index(o.give_leg)), []).append((o.id, o.rest))
        held = {(u, k): rows[u][k] for u, k, _ in plan.moves}
        released = liquidation.orders_released(plan.moves, held, reserved, book)
        gone = {order_id for _, order_id in released}
        self._take_out(resting, reserved, [o for o in resting if o.id in gone])
        return released

    def _take_out(self, resting: list, reserved: dict, orders: list) -> None:
        for o in orders:
            resting.remove(o)
            key = (self.users[o.owner].pk, self.legs.index(o.give_leg))
            reserved[key] = reserved.get(key, 0) - o.rest

    def _check_liquidation(self, label: str, written: list[Event], before: dict[str, list[int]]) -> None:
        """Each PositionLiquidated/AutoDeleveraged pair is the model's: the user, its holdings, W below 0,
        the ranking and the deltas of plan_deleverage; and the holdings moved by exactly those deltas."""
        taken = self.expected_liquidations
        liquidated = [e for e in written if e.type == "PositionLiquidated"]
        deleveraged = [e for e in written if e.type == "AutoDeleveraged"]
        planned = [one for one in taken if one.plan is not None]
        if [e.data["user_id"] for e in liquidated] != [one.user for one in taken] or len(deleveraged) != len(planned):
            raise self._violation(label, f"liquidated {[e.data['user_id'] for e in liquidated]}, the model says "
                                  f"{[one.user for one in taken]}", written)  # fmt: skip
        ids = {self.users[name].pk: name for name in self.holders}
        expected = {u: list(row) for u, row in before.items()}
        self._check_buy_backs(label, written, liquidated, taken)
        released = [
            (e.data["user_id"], e.data["order_id"])
            for e in written
            if e.type == "OrderCancelled" and e.data.get("reason") == "deleveraged"
        ]
        if released != self.expected_released:
            raise self._violation(
                label, f"deleveraging cancelled orders {released}, the model says {self.expected_released}", written
            )
        for one, pos, adl in zip(planned, [e for e in liquidated if e.data["method"] == "deleverage"], deleveraged,
                                 strict=True):  # fmt: skip
            d = adl.data
            plan = {str(u): row for u, row in sorted(one.plan.deltas.items())}
            if pos.data["holdings"] != one.holdings or d["deltas_by_id"] != plan or d["user_id"] != one.user:
                raise self._violation(label, f"deleveraged {d['deltas_by_id']}, the model plans {plan}", [pos, adl])
            if Fraction(pos.data["W"]) >= 0 or d["bankrupt"] != one.plan.bankrupt:
                raise self._violation(label, f"liquidated at W {pos.data['W']} (bankrupt {d['bankrupt']})", [pos, adl])
            domain.check_zero_sum(*one.plan.deltas.values())
            for u, deltas in one.plan.deltas.items():
                expected[ids[u]] = [x + dx for x, dx in zip(expected[ids[u]], deltas, strict=True)]
            self.result.deleveraged_units += sum(n for _, _, n in one.plan.moves)
            self.result.bankrupt += one.plan.bankrupt
        self.result.liquidations += len(taken)
        if self.matrix != expected:
            raise self._violation(label, "the holdings after deleveraging differ from the model's", written)

    def _buy_back_band(self):
        """A batch session whose next cut comes before trading ends offers a liquidated position's shorts
        back in that batch, at the edge of its band; otherwise (None) they are deleveraged at once."""
        if not self.by_batch:
            return None
        s = Session.objects.values("paused_at", "next_cut_at", "batch_band").get(id=self.sid)
        ends = self.t2 if self.timed else None
        if s["paused_at"] is not None or s["next_cut_at"] is None or (ends is not None and s["next_cut_at"] >= ends):
            return None
        return order_rules.band_fraction(s["batch_band"])

    def _check_buy_backs(self, label: str, written: list[Event], liquidated: list[Event], taken) -> None:
        """Each liquidation's method is the model's, and its buy-back orders (one batch, flagged) are the
        model's: legs, quantity and limit."""
        for pos, one in zip(liquidated, taken, strict=True):
            method = "buy_back" if one.orders else "deleverage"
            placed = [
                (self.legs.index(e.data["give_leg"]), self.legs.index(e.data["get_leg"]), e.data["quantity"],
                 e.data["limit_rate"])
                for e in written
                if e.type == "OrderPlaced" and e.data.get("liquidation") and e.data["user_id"] == one.user
                and e.data["batches"] == 1
            ]  # fmt: skip
            if pos.data["method"] != method or placed != list(one.orders) or pos.data["holdings"] != one.holdings:
                raise self._violation(
                    label, f"liquidation of {one.user}: {pos.data['method']} {placed}, the model says {method} "
                    f"{list(one.orders)}", written,
                )  # fmt: skip
            self.result.buy_backs += bool(one.orders)

    def _after_cut(self, label: str, event: Event, before: dict, expected: dict) -> dict:
        """After a cut in a shorting session: every owner's fills pass the margin rule at the cut's prices
        (orders held out have none); then each liquidated participant whose buy-back orders were in the book
        and is still short is deleveraged at those prices, exactly the model's plan. Returns the holdings
        the cut leaves."""
        d = event.data
        if not d["reference"]:
            return expected
        reference = [d["reference"][leg] for leg in self.legs]
        fact = margin_model.Shorting(self._margin_settings(), self.q, reference)
        ids = {name: self.users[name].pk for name in self.holders}
        names = {pk: name for name, pk in ids.items()}
        fills = d["result"].get("fills", []) if d["result"]["result"] == "cleared" else []
        owners = {names[f["owner"]] for f in fills}
        held = {self.cut_orders[i].owner for i in d.get("margin_held", [])}
        for name in sorted(owners):
            if margin_model.margin_ok(before[name], expected[name], fact) or name in held:
                raise self._violation(label, f"{name}'s fills break the margin rule (or were held out)", [event])
        self.result.margin_held += len(d.get("margin_held", []))
        in_book = {self.cut_orders[i].owner for i in d["orders"]}
        rows = {ids[n]: list(row) for n, row in expected.items()}
        plans = []
        for user in sorted(u for u in self.cut_pending if names[u] in in_book):
            if rules.has_shorts(rows[user]):
                plan = liquidation.plan_deleverage(user, rows, reference)
                plans.append({str(u): row for u, row in sorted(plan.deltas.items())})
                for u, deltas in plan.deltas.items():
                    rows[u] = [x + dx for x, dx in zip(rows[u], deltas, strict=True)]
                self.result.deleveraged_units += sum(n for _, _, n in plan.moves)
        after = list(Event.objects.filter(stream=self.stream, seq__gt=event.seq).order_by("seq"))
        got = [
            e.data["deltas_by_id"]
            for e in after
            if e.type == "AutoDeleveraged" and e.data.get("after_batch") == d["batch"]
        ]
        released = [e for e in after if e.type == "OrderCancelled" and e.data.get("reason") == "deleveraged"]
        if got != plans or len(after) != len(plans) + len(released):
            raise self._violation(
                label, f"after the batch: deleveraged {got}, the model plans {plans}", after or [event]
            )
        self._check_released_fit(label, plans, released or [])
        return {names[u]: row for u, row in rows.items()}

    def _check_released_fit(self, label: str, plans: list[dict], released: list[Event]) -> None:
        """After a batch's deleveraging: orders were cancelled only of holders it took from, and what every
        such holder's orders still reserve fits what it holds."""
        takers = {int(u) for plan in plans for u, row in plan.items() if any(x < 0 for x in row)}
        strays = [e for e in released if e.data["user_id"] not in takers]
        over = Holding.objects.filter(session_id=self.sid, participant__user_id__in=takers, reserved__gt=0).filter(
            reserved__gt=F("qty")
        )
        if strays or over.exists():
            raise self._violation(label, "deleveraging left orders reserving more than their owner holds", released)

    # ------------------------------------------------------------ settlement

    def _expected_payouts(self, prices: list[int]) -> dict[str, tuple[int, int]]:
        """holder -> (paid, gross), money base units: x.S, haircut where some payout would be below 0."""
        ids = {self.users[name].pk: name for name in self.holders}
        cut = margin_model.payouts({pk: self.matrix[name] for pk, name in ids.items()}, prices, self.q)
        if cut.deficit:
            self.result.deficit = domain.money_str(cut.deficit)
            self.result.haircut = f"{cut.factor.numerator}/{cut.factor.denominator}"
        return {ids[pk]: (cut.paid[pk], cut.gross[pk]) for pk in ids}
