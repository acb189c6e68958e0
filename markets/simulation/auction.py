"""What simulated participants try in a session with batch auctions (limit orders, cancels, the organiser's
cut now and the scheduler's cut when due), well-formed or bad on purpose, each planned as an `_Action` with
the refusals the reference model predicts; and the checks of a cut (its book, its fills, the holdings and
reservations it moved) and of reservations after every step."""

from __future__ import annotations

from django.db.models import Sum

from ledger import clock
from ledger.models import Event
from markets import domain, services
from markets.models import Holding, Order, Participant
from markets.simulation import model
from markets.simulation.result import ORGANISER, OUTSIDER, _Action, _text

ORDER_MIX = {"order": 22, "cancel_order": 6, "cut": 2}
BAD_ORDER_KINDS = (
    "order_bad_qty", "order_bad_limit", "order_bad_lifetime", "order_too_small", "order_insufficient",
    "order_too_many", "order_wrong_user", "order_same_leg", "cancel_order_wrong_user", "cancel_order_closed",
    "cancel_order_unknown", "cancel_order_at_cut", "cut_wrong_user",
)  # fmt: skip
GARBAGE_LIFETIMES = ((0, False), (1001, False), ("2.5", False), (3, True), (None, "yes"))
GARBAGE_IDS = ("abc", -1, 10**9, "", "1; DROP TABLE", 10**30)


class Auction:
    """Mixed into `Simulation` (its users, roles, matrix, prices, rng and checks)."""

    # ------------------------------------------------------------ the facts

    def _orders(self, **filters) -> list[model.Order]:
        rows = Order.objects.filter(session_id=self.sid, **filters).order_by("id")
        values = rows.values_list(
            "id", "participant__username", "give_leg", "get_leg", "rest", "limit_rate", "batches_left", "status",
            "placed_at",
        )  # fmt: skip
        return [model.Order(*row) for row in values]

    def _reserved(self) -> dict[str, list[int]]:
        rows = Holding.objects.filter(session_id=self.sid).order_by("participant__username", "leg_index")
        reserved: dict[str, list[int]] = {}
        for name, amount in rows.values_list("participant__username", "reserved"):
            reserved.setdefault(name, []).append(amount)
        return reserved

    # ------------------------------------------------------------ actions

    def _order_action(self, actor: str, give, get, qty, limit, good_for=None, gtc=False, *, on_purpose=False):
        user = self.users[actor]
        return _Action(
            "order",
            f"order by {actor}: give {qty!r} {give} for {get} at limit {limit!r} (good_for {good_for!r}, gtc {gtc!r})",
            lambda: services.place_order(user, self.sid, give, get, qty, limit, good_for=good_for, gtc=gtc),
            frozenset(model.place_order(self._market(), actor, give, get, qty, limit, good_for, gtc)),
            on_purpose,
        )

    def _cancel_order_action(self, actor: str, order: model.Order | None, *, order_id=None, on_purpose=False):
        user = self.users[actor]
        target = order.id if order is not None else order_id
        return _Action(
            "cancel_order",
            f"cancel by {actor} of order {target!r}",
            lambda: services.cancel_order(user, target),
            frozenset(model.cancel_order(self._market(), actor, order)),
            on_purpose,
        )

    def _cut_action(self, actor: str | None, *, on_purpose: bool = False) -> _Action:
        """The organiser (or someone else, on purpose) cuts now; None: the scheduler, which cuts (one event)
        exactly when the reference model says the cut is due and otherwise writes nothing."""
        user = self.users[actor] if actor is not None else None
        market = self._market()
        cut = market.now if actor is not None else market.next_cut
        resting = self._orders(status="resting")
        self.cut_orders = {o.id: o for o in resting}
        self.cut_pending = set(
            Participant.objects.filter(session_id=self.sid, liquidation_pending=True).values_list("user_id", flat=True)
        )
        writes = None if self._shorting_on() else 1  # with shorting: deleveraging may follow (checked by the cut)
        self.expected_book = model.book(resting, cut) if cut is not None else []
        if actor is not None:
            label = f"cut now by {actor}"
            return _Action(
                "cut",
                label,
                lambda: services.clear_batch(user, self.sid),
                frozenset(model.clear_now(market, actor)),
                on_purpose,
                writes,
            )
        return _Action(
            "cut",
            f"the scheduler's cut at {domain.when(cut)}",
            lambda: services.clear_batch(None, self.sid),
            writes=writes,
        )

    def _scheduler_cut(self) -> None:
        """Before each step's action, as `run_oracle` would, the scheduler looks for a due cut: it cuts (one
        event) exactly when the reference model says one is due, and otherwise writes nothing."""
        if model.cut_due(self._market()):
            self._execute(self._cut_action(None))
            return
        seq = self._last_seq()
        if services.clear_batch(None, self.sid) is not None or self._last_seq() != seq:
            raise self._violation(
                "scheduler", "cut a batch the reference model says is not due", self._events_after(seq)
            )

    # ------------------------------------------------------------ the valid intents

    def _limit(self, give: str, get: str) -> int:
        """The oracle's cross rate, 3% either side: some orders cross, some do not."""
        edge = int(self.rng.integers(-300, 301))
        return max(1, self.prices[give] * domain.RATE_SCALE * (10_000 + edge) // (self.prices[get] * 10_000))

    def _valid_order(self) -> _Action:
        """A holder offers 1-30% of what it may give of one leg for another, near the oracle's rate."""
        market = self._market()
        candidates = [u for u in self.holders if any(market.free(u, leg) > 0 for leg in self.legs)]
        owner = self._pick(candidates or self.holders)
        give = self._pick([leg for leg in self.legs if market.free(owner, leg) > 0] or self.legs)
        get = self._pick([leg for leg in self.legs if leg != give])
        free = market.free(owner, give)
        if self._shorting_on() and self.rng.random() < 0.3:  # an order giving beyond what it holds
            free += self._reserve_cap(self.legs.index(give))
        units = free * int(self.rng.integers(1, 31)) // 100
        units = max(units - units % 10**4, self.min_order)
        lifetime = self._pick(((None, False), (None, False), (2, False), (None, True)))
        return self._order_action(owner, give, get, _text(units, domain.QTY_DP), self._limit_text(give, get), *lifetime)

    def _limit_text(self, give: str, get: str) -> str:
        return _text(self._limit(give, get), domain.RATE_DP)

    def _valid_cancel_order(self) -> _Action | None:
        resting = self._orders(status="resting")
        if not resting:
            return None
        order = self._pick(resting)
        return self._cancel_order_action(order.owner, order)

    def _valid_cut(self) -> _Action:
        return self._cut_action(ORGANISER)

    # ------------------------------------------------------------ bad inputs, on purpose

    def _bad_order(self, kind: str) -> _Action | None:
        market = self._market()
        give, get = self._two_legs()
        owner = self._pick(self.holders)
        fair = self._limit_text(give, get)
        if kind == "order_bad_qty":
            return self._order_action(owner, give, get, self._pick(("0", "-1", "NaN", "", None)), fair, on_purpose=True)
        if kind == "order_bad_limit":
            return self._order_action(owner, give, get, "1", self._pick(("0", "-1", "x", "1000001")), on_purpose=True)
        if kind == "order_bad_lifetime":
            good_for, gtc = self._pick(GARBAGE_LIFETIMES)
            return self._order_action(owner, give, get, "1", fair, good_for, gtc, on_purpose=True)
        if kind == "order_too_small":
            small = _text(max(1, self.min_order - 1), domain.QTY_DP)
            return self._order_action(owner, give, get, small, fair, on_purpose=True)
        if kind == "order_insufficient":  # more than is free: held less what resting orders reserve
            units = market.free(owner, give) + int(self.rng.integers(1, 10 * domain.QTY_SCALE))
            return self._order_action(owner, give, get, _text(units, domain.QTY_DP), fair, on_purpose=True)
        if kind == "order_too_many":
            full = [u for u in self.holders if market.resting.get(u, 0) >= market.max_orders]
            if not full:
                return None
            return self._order_action(self._pick(full), give, get, "0.01", fair, on_purpose=True)
        if kind == "order_wrong_user":
            return self._order_action(self._pick((ORGANISER, OUTSIDER)), give, get, "1", fair, on_purpose=True)
        if kind == "order_not_batch":  # a session that trades by RFQ only has no book
            return self._order_action(owner, give, get, "1", fair, on_purpose=True)
        if kind == "order_same_leg":
            return self._order_action(owner, give, give, "1", fair, on_purpose=True)
        if kind == "cut_wrong_user":
            return self._cut_action(self._pick([*self.holders, OUTSIDER]), on_purpose=True)
        return self._bad_cancel(kind)

    def _bad_cancel(self, kind: str) -> _Action | None:
        if kind == "cancel_order_unknown":
            return self._cancel_order_action(
                self._pick(self.holders), None, order_id=self._pick(GARBAGE_IDS), on_purpose=True
            )
        if kind == "cancel_order_closed":
            closed = self._orders(status__in=("filled", "cancelled", "expired"))
            if not closed:
                return None
            order = self._pick(closed[-50:])
            return self._cancel_order_action(order.owner, order, on_purpose=True)
        resting = self._orders(status="resting")
        if not resting:
            return None
        order = self._pick(resting)
        if kind == "cancel_order_wrong_user":
            return self._cancel_order_action(self._other(order.owner), order, on_purpose=True)
        if kind == "cancel_order_at_cut":
            cut = self._market().next_cut
            if cut is None or order.placed_at >= cut or clock.now() > cut:
                return None
            clock.set_time(cut)  # the cut's instant: the order belongs to the batch being cleared
            return self._cancel_order_action(order.owner, order, on_purpose=True)
        raise AssertionError(f"unknown bad kind {kind}")

    # ------------------------------------------------------------ checks

    def _check_reservations(self, label: str, events: list[Event]) -> None:
        """0 <= reserved <= held for every holding, and reserved is exactly what the resting orders promise."""
        promised = {
            (name, leg): amount
            for name, leg, amount in Order.objects.filter(session_id=self.sid, status="resting")
            .values_list("participant__username", "give_leg")
            .annotate(total=Sum("rest"))
        }
        for name, leg, qty, reserved in Holding.objects.filter(session_id=self.sid).values_list(
            "participant__username", "leg", "qty", "reserved"
        ):
            cap = self._reserve_cap(self.legs.index(leg))
            if not 0 <= reserved <= qty + cap or reserved != promised.get((name, leg), 0):
                raise self._violation(
                    label,
                    f"{name} reserves {reserved} of {leg}, holds {qty}, its resting orders give "
                    f"{promised.get((name, leg), 0)}",
                    events,
                )

    def _check_cut(self, label: str, event: Event, before: dict[str, list[int]], orders: dict[int, model.Order]):
        """The cut's book is the model's; every fill within its order's rest and limit; each leg's units given
        equal those received; holdings moved by exactly the fills; each order aged as the model says."""
        d = event.data
        if d["orders"] != self.expected_book:
            raise self._violation(
                label, f"book {d['orders'][:10]}, the model expects {self.expected_book[:10]}", [event]
            )
        fills = {f["order"]: f for f in d["result"].get("fills", ())} if d["result"]["result"] == "cleared" else {}
        expected = {u: list(row) for u, row in before.items()}
        given = [0] * len(self.legs)
        received = [0] * len(self.legs)
        for oid, f in fills.items():
            o = orders[oid]
            gi, ge = self.legs.index(o.give_leg), self.legs.index(o.get_leg)
            if (f["give"], f["get"]) != (gi, ge) or not 0 < f["given"] <= o.rest or f["rest"] != o.rest - f["given"]:
                raise self._violation(label, f"fill of order {oid} {f} does not match the order {o}", [event])
            if f["received"] * domain.RATE_SCALE < f["given"] * o.limit:
                raise self._violation(label, f"fill of order {oid} is below its limit {o.limit}", [event])
            given[gi] += f["given"]
            received[ge] += f["received"]
            expected[o.owner][gi] -= f["given"]
            expected[o.owner][ge] += f["received"]
        if given != received:
            raise self._violation(label, f"per leg, given {given} differs from received {received}", [event])
        if self._shorting_on():
            expected = self._after_cut(label, event, before, expected)
        if self.matrix != expected:
            raise self._violation(label, "holdings did not move by exactly the cut's fills", [event])
        now = {o.id: o for o in self._orders(id__in=d["orders"])}
        released = {  # cancelled right after the cut: their owner was deleveraged of what they offered
            e.data["order_id"]
            for e in Event.objects.filter(stream=self.stream, seq__gt=event.seq, type="OrderCancelled")
            if e.data.get("reason") == "deleveraged"
        }
        for oid in d["orders"]:
            if oid in released and now[oid].status == "cancelled":
                continue
            rest = fills[oid]["rest"] if oid in fills else orders[oid].rest
            status, left = model.after_cut(rest, orders[oid].left)
            if (now[oid].status, now[oid].rest, now[oid].left) != (status, rest, left):
                raise self._violation(
                    label, f"order {oid} is {now[oid]}, the model says {status} {rest} {left}", [event]
                )
        self.result.fills += len(fills)
        self.result.cuts += 1
