"""The end of a simulated run: settlement at the oracle's fixing (with refusals on purpose first), invariant 4
checked exactly, then the replay and the whole audit of the stream."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from ledger import clock, store
from markets import audit, domain, services
from markets.models import Payout, Quote, Session, Settlement
from markets.simulation import fixing_model
from markets.simulation.result import ORGANISER, _Action


class Proof:
    """Mixed into `Simulation` (its users, prices, matrix, clock and checks)."""

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
        if self.params.fixing == "last":
            self._store_tick(fixing=True)
        else:
            self._fixing_burst()
        # Quotes whose expiry passed by the end of trading (t2, or now) are recorded expired first, then a
        # timed session's trading closes, in the same command as the settlement.
        ended = self.t2 if self.timed else clock.now()
        expired = Quote.objects.filter(rfq__session_id=self.sid, status=Quote.Status.LIVE, expires_at__lte=ended)
        self._execute(
            _Action(
                "settle",
                "settle at the oracle's fixing",
                lambda: services.settle_session(None, self.sid),
                writes=1 + self.timed + expired.exists(),
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
        self._check_fixing(settlement, events)
        if dict(zip(self.legs, prices, strict=True)) != self.prices:
            raise self._violation("settlement", f"settled at {settlement.prices}, the fixing is {self.prices}", events)
        expected = self._expected_payouts(prices)  # x.S, haircut pro rata where some x.S < 0 (shorting)
        paid = {u: p for u, (p, _) in expected.items()}
        try:
            domain.check_settlement_sum(paid, self.q, prices)
            domain.check_payouts_not_negative(paid)
        except domain.InvariantViolation as exc:
            raise self._violation("settlement", exc.message, events) from None
        rows = Payout.objects.filter(session_id=self.sid).values_list("participant__username", "amount", "gross")
        stored = {u: (amount, gross) for u, amount, gross in rows}
        cut = bool(settlement.deficit)
        want = {u: (domain.money_str(p), domain.money_str(g) if cut else "") for u, (p, g) in expected.items()}
        if stored != want:
            raise self._violation(
                "settlement", f"payouts stored {stored} differ from x.S (haircut: {cut}) {want}", events
            )
        if cut != bool(self.result.deficit) or (cut and Decimal(settlement.deficit) != Decimal(self.result.deficit)):
            raise self._violation(
                "settlement", f"deficit {settlement.deficit!r}, the model's {self.result.deficit!r}", events
            )
        self.result.shorts_open = sum(x < 0 for row in self.matrix.values() for x in row)
        if Decimal(settlement.total) != Decimal(domain.money_str(domain.payout(self.q, prices))):
            raise self._violation("settlement", f"total {settlement.total} differs from q.S", events)
        self.result.prices = dict(self.prices)
        self.result.payout_total = settlement.total

    def _check_fixing(self, settlement: Settlement, events) -> None:
        """The fixing the model makes from the simulator's own tape, leg by leg, and the tier that answered;
        from then on the settled prices are the fixing's (`self.prices`)."""
        at = self.t2 if self.timed else dt.datetime.fromisoformat(settlement.fixing["at"])
        tiers = []
        for leg in self.legs:
            value, tier = fixing_model.expected(self.params.fixing, self.tape, leg, at)
            recorded = (settlement.fixing.get("legs") or {}).get(leg, {})
            if (value, tier) != (settlement.prices[leg], recorded.get("tier")):
                raise self._violation(
                    "settlement",
                    f"{leg} fixed at {settlement.prices[leg]} by tier {recorded.get('tier')}, the model makes "
                    f"{value} by tier {tier} ({self.params.fixing})",
                    events,
                )
            tiers.append(tier)
            self.result.fixing_dropped += len(recorded.get("dropped", {}))
        self.prices = {leg: settlement.prices[leg] for leg in self.legs}
        self.result.fixing_said = f", tiers {sorted(set(tiers))}" + (
            f", {self.result.fixing_dropped} source(s) dropped" if self.params.fixing == "composite" else ""
        )

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
