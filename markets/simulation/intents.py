"""The intents a simulated participant has, well-formed or bad on purpose, each planned as an `_Action` with
the refusals the reference model (`markets.simulation.model`) predicts for it."""

from __future__ import annotations

import numpy as np

from ledger import clock
from markets import domain, services
from markets.models import RFQ, Quote
from markets.simulation import model
from markets.simulation.auction import BAD_ORDER_KINDS, ORDER_MIX
from markets.simulation.result import ORGANISER, OUTSIDER, _Action, _text

VALID_MIX = {"rfq": 20, "quote": 24, "accept": 18, "cancel": 5, "withdraw": 5, "expire": 5}
BAD_WEIGHT = 23
SHORT_WEIGHT = 12  # with --short-limit: an RFQ giving more of a leg than its taker holds
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


class Intents:
    """Mixed into `Simulation`: it provides users, roles, the holdings matrix, the rng and the checks."""

    # ------------------------------------------------------------ reads

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

    # ------------------------------------------------------------ actions

    def _rfq_action(self, actor: str, give: object, get: object, qty: object, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "rfq",
            f"rfq by {actor}: give {qty!r} {give} for {get}",
            lambda: services.request_rfq(user, self.sid, give, get, qty),
            frozenset(model.rfq(self._market(), actor, give, get, qty)),
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
            frozenset(model.quote(self._market(), actor, self._rfq_fact(rfq) if rfq else None, rate, ttl)),
            on_purpose,
        )

    def _accept_action(self, actor: str, quote: dict | None, *, quote_id: object = None, on_purpose=False) -> _Action:
        user = self.users[actor]
        target = quote["id"] if quote is not None else quote_id
        return _Action(
            "accept",
            f"accept by {actor} of quote {target!r}",
            lambda: services.accept_quote(user, target),
            frozenset(model.accept(self._market(), actor, self._quote_fact(quote) if quote else None)),
            on_purpose,
        )

    def _cancel_action(self, actor: str, rfq: dict, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "cancel",
            f"cancel by {actor} of rfq {rfq['id']}",
            lambda: services.cancel_rfq(user, rfq["id"]),
            frozenset(model.cancel(self._market(), actor, self._rfq_fact(rfq))),
            on_purpose,
        )

    def _withdraw_action(self, actor: str, quote: dict, *, on_purpose: bool = False) -> _Action:
        user = self.users[actor]
        return _Action(
            "withdraw",
            f"withdraw by {actor} of quote {quote['id']}",
            lambda: services.withdraw_quote(user, quote["id"]),
            frozenset(model.withdraw(self._market(), actor, self._quote_fact(quote))),
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
        """One intent of the session's mechanism: RFQ cycles, limit orders and cuts, or both."""
        by_rfq, by_batch = self.mechanism in ("rfq", "both"), self.mechanism in ("batch", "both")
        mix = (VALID_MIX if by_rfq else {"expire": VALID_MIX["expire"]}) | (ORDER_MIX if by_batch else {})
        mix |= {"short": SHORT_WEIGHT} if self._shorting_on() else {}
        bad = (BAD_KINDS if by_rfq else ("rfq_not_rfq",)) + (BAD_ORDER_KINDS if by_batch else ("order_not_batch",))
        fallback = self._valid_rfq if by_rfq else self._valid_order
        kinds = [*mix, "bad"]
        weights = np.array([*mix.values(), BAD_WEIGHT], dtype=float)
        intent = kinds[int(self.rng.choice(len(kinds), p=weights / weights.sum()))]
        if intent == "bad":  # the kinds take turns, so even a short run tries each of them
            kind = bad[self.bad_turn % len(bad)]
            self.bad_turn += 1
            action = self._bad(kind) if kind in BAD_KINDS or kind == "rfq_not_rfq" else self._bad_order(kind)
            if action is not None:
                return action
            return fallback()
        action = getattr(self, f"_valid_{intent}")()
        return action if action is not None else fallback()

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
        room = self._shorting_fact().caps[self.legs.index(rfq["get_leg"])] if self._shorting_on() else 0
        able = [m for m in makers if self._held(m, rfq["get_leg"]) + room >= receive]
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
        if kind == "rfq_not_rfq":  # a session that trades by batch auction only takes no RFQ
            give, get = self._two_legs()
            return self._rfq_action(self._pick(self.holders), give, get, "1", on_purpose=True)
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
