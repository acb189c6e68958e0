"""Bounded shorting in the simulator (`--short-limit`): traders who give legs they do not hold, within the
limit; oracle prices that jump (a leg x0.5 to x2 in one tick, now and then); after every tick the
scheduler's liquidation run (`services.liquidate_due_sessions`), predicted by the reference model
(`margin_model.liquidations`: who, and every unit auto-deleveraging moves) and checked event by event; invariant
2 as bounded shorting reads it (nobody below minus its limit, the pool's shorts of a leg within the cap);
and at settlement the haircut when the fixing lies outside the box (`margin_model.payouts`)."""

from __future__ import annotations

from fractions import Fraction

from ledger.models import Event
from markets import domain, services
from markets.domain import margin as rules
from markets.models import RFQ, Quote
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
        taken = margin_model.liquidations(by_id, prices, self._margin_settings())
        rfqs = {r["id"]: r["taker"] for r in self._rfqs(status=RFQ.Status.OPEN)}
        quotes = {q["id"]: (q["rfq_id"], q["maker"]) for q in self._quotes(status=Quote.Status.LIVE)}
        names = {pk: name for name, pk in ids.items()}
        writes = 0
        for one in taken:
            name = names[one.user]
            mine = [i for i, taker in rfqs.items() if taker == name]
            for i in mine:
                del rfqs[i]
            quotes = {i: q for i, q in quotes.items() if q[0] not in mine}
            writes += len(mine) + sum(1 for q in quotes.values() if q[1] == name) + 2
            quotes = {i: q for i, q in quotes.items() if q[1] != name}
        self.expected_liquidations = taken
        who = ", ".join(names[one.user] for one in taken) or "nobody"
        return _Action(
            "liquidate", f"liquidation run (the model takes {who})", services.liquidate_due_sessions, writes=writes
        )

    def _check_liquidation(self, label: str, written: list[Event], before: dict[str, list[int]]) -> None:
        """Each PositionLiquidated/AutoDeleveraged pair is the model's: the user, its holdings, W below 0,
        the ranking and the deltas of plan_deleverage; and the holdings moved by exactly those deltas."""
        taken = self.expected_liquidations
        liquidated = [e for e in written if e.type == "PositionLiquidated"]
        deleveraged = [e for e in written if e.type == "AutoDeleveraged"]
        if [e.data["user_id"] for e in liquidated] != [one.user for one in taken] or len(deleveraged) != len(taken):
            raise self._violation(label, f"liquidated {[e.data['user_id'] for e in liquidated]}, the model says "
                                  f"{[one.user for one in taken]}", written)  # fmt: skip
        ids = {self.users[name].pk: name for name in self.holders}
        expected = {u: list(row) for u, row in before.items()}
        for one, pos, adl in zip(taken, liquidated, deleveraged, strict=True):
            d = adl.data
            plan = {str(u): row for u, row in sorted(one.plan.deltas.items())}
            if pos.data["holdings"] != one.holdings or d["deltas_by_id"] != plan or d["user_id"] != one.user:
                raise self._violation(label, f"deleveraged {d['deltas_by_id']}, the model plans {plan}", [pos, adl])
            if Fraction(pos.data["W"]) >= 0 or d["bankrupt"] != one.plan.bankrupt:
                raise self._violation(label, f"liquidated at W {pos.data['W']} (bankrupt {d['bankrupt']})", [pos, adl])
            domain.check_zero_sum(*one.plan.deltas.values())
            for u, deltas in one.plan.deltas.items():
                expected[ids[u]] = [x + dx for x, dx in zip(expected[ids[u]], deltas, strict=True)]
            self.result.liquidations += 1
            self.result.deleveraged_units += sum(n for _, _, n in one.plan.moves)
            self.result.bankrupt += one.plan.bankrupt
        if self.matrix != expected:
            raise self._violation(label, "the holdings after deleveraging differ from the model's", written)

    # ------------------------------------------------------------ settlement

    def _expected_payouts(self, prices: list[int]) -> dict[str, tuple[int, int]]:
        """holder -> (paid, gross), money base units: x.S, haircut where some payout would be below 0."""
        ids = {self.users[name].pk: name for name in self.holders}
        cut = margin_model.payouts({pk: self.matrix[name] for pk, name in ids.items()}, prices, self.q)
        if cut.deficit:
            self.result.deficit = domain.money_str(cut.deficit)
            self.result.haircut = f"{cut.factor.numerator}/{cut.factor.denominator}"
        return {ids[pk]: (cut.paid[pk], cut.gross[pk]) for pk in ids}
