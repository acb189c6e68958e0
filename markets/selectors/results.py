"""A settled session's results, as a class reads them: per holder the payout, the value their initial
allocation has at the same fixing, the P&L between the two, and a rank by P&L. The one computation behind
the results page, `GET /api/v1/sessions/{id}/results` and `payouts.csv`.

Exact: everything is integers in money base units (10**-12) until it is written. The payout is the one
the settlement recorded (x_i . S_t2); the initial value is x0_i . S_t2 at the same prices; so
Σ payouts = q . S_t2 (invariant 4) and Σ x0_i = q make Σ P&L = 0 exactly, which `Results` states.
Ranks are a competition ranking of P&L, highest first: equal P&Ls share a rank and the next rank skips
(1, 1, 3).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from markets import domain, projections_actions
from markets.errors import Conflict
from markets.models import Holding, Participant, Payout, Session, Settlement
from markets.selectors.fixings import record_view


def competition_ranks(values: Sequence[int]) -> list[int]:
    """The rank of each value, highest first, ties sharing the best rank of their group (1, 1, 3)."""
    order = sorted(values, reverse=True)
    first = {}
    for position, value in enumerate(order, start=1):
        first.setdefault(value, position)
    return [first[v] for v in values]


def money_text(base: int) -> str:
    """Money in base units as its exact 12-place string, zero too ("0.000000000000", where
    `domain.money_str` writes 0E-12)."""
    return format(domain.to_decimal(base, domain.MONEY_DP), "f")


money_base = domain.money_base  # the one reader of recorded money (export reads it here too)


@dataclass(frozen=True)
class Entry:
    """What one holder's result is computed from."""

    user_id: int
    username: str
    name: str
    role: str
    x: tuple[int, ...]  # held at the settlement
    initial: tuple[int, ...]  # allocated at the opening
    payout: int  # as the settlement recorded it, base units
    gross: int | None = None  # x_i . S_t2 before a settlement haircut (None: the settlement had none)
    initial_cash: int = 0  # what corporate actions would have paid the initial allocation


@dataclass(frozen=True)
class ResultRow:
    rank: int
    user_id: int
    username: str
    name: str
    role: str
    x: tuple[int, ...]
    payout: int
    initial_value: int
    pnl: int
    gross: int | None = None  # before the settlement haircut (None: none)

    @property
    def haircut(self) -> int | None:
        """payout - gross: below 0 where the deficit was taken from it, above 0 where a negative x_i . S
        was raised to 0 (None: no haircut)."""
        return None if self.gross is None else self.payout - self.gross

    def as_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "user_id": self.user_id,
            "username": self.username,
            "name": self.name,
            "role": self.role,
            "payout": self.payout_str,
            "initial_value": self.initial_value_str,
            "pnl": self.pnl_str,
            "gross": None if self.gross is None else money_text(self.gross),
            "haircut": None if self.haircut is None else money_text(self.haircut),
        }

    @property
    def payout_str(self) -> str:
        return money_text(self.payout)

    @property
    def initial_value_str(self) -> str:
        return money_text(self.initial_value)

    @property
    def pnl_str(self) -> str:
        return money_text(self.pnl)

    @property
    def payout_dec(self) -> Decimal:
        return domain.to_decimal(self.payout, domain.MONEY_DP)

    @property
    def gross_dec(self) -> Decimal | None:
        return None if self.gross is None else domain.to_decimal(self.gross, domain.MONEY_DP)

    @property
    def haircut_dec(self) -> Decimal | None:
        return None if self.haircut is None else domain.to_decimal(self.haircut, domain.MONEY_DP)

    @property
    def initial_value_dec(self) -> Decimal:
        return domain.to_decimal(self.initial_value, domain.MONEY_DP)

    @property
    def pnl_dec(self) -> Decimal:
        return domain.to_decimal(self.pnl, domain.MONEY_DP)


def ranked(entries: Iterable[Entry], prices: Sequence[int]) -> list[ResultRow]:
    """Each holder's result at the settlement prices, best P&L first (ties by name, then user id)."""
    entries = list(entries)
    values = [domain.payout(e.initial, prices) + e.initial_cash for e in entries]
    pnls = [e.payout - v for e, v in zip(entries, values, strict=True)]
    rows = [
        ResultRow(rank, e.user_id, e.username, e.name, e.role, e.x, e.payout, value, pnl, e.gross)
        for e, value, pnl, rank in zip(entries, values, pnls, competition_ranks(pnls), strict=True)
    ]
    return sorted(rows, key=lambda r: (r.rank, r.name.casefold(), r.user_id))


@dataclass(frozen=True)
class Results:
    session: Session
    legs: list[str]
    prices: list[int]  # S_t2 per leg, base units
    settled_at: dt.datetime
    fixing: Any
    rows: list[ResultRow]
    expected: int  # q . S_t2, plus the cash corporate actions paid into the pool
    deficit: int = 0  # the settlement haircut's deficit: the sum of the negative x_i . S_t2 (0: none)

    @property
    def haircut(self) -> dict[str, str] | None:
        """The settlement's waterfall (None without one): the deficit and the factor q.S / (q.S + D) the
        positive payouts were scaled by (then rounded by largest remainder, so they sum to q.S)."""
        if not self.deficit:
            return None
        factor = Fraction(self.expected, self.expected + self.deficit)
        return {"deficit": money_text(self.deficit), "factor": f"{factor.numerator}/{factor.denominator}"}

    @property
    def fixing_shown(self) -> dict[str, Any]:
        """The settlement's fixing record as the page shows it (`fixings.record_view`)."""
        return record_view(self.fixing, self.legs)

    @property
    def deficit_dec(self) -> Decimal:
        return domain.to_decimal(self.deficit, domain.MONEY_DP)

    @property
    def total_payout(self) -> int:
        return sum(r.payout for r in self.rows)

    @property
    def total_initial_value(self) -> int:
        return sum(r.initial_value for r in self.rows)

    @property
    def total_pnl(self) -> int:
        return sum(r.pnl for r in self.rows)

    @property
    def prices_shown(self) -> list[tuple[str, Decimal]]:
        return [(leg, domain.to_decimal(p, domain.PRICE_DP)) for leg, p in zip(self.legs, self.prices, strict=True)]

    @property
    def total_payout_dec(self) -> Decimal:
        return domain.to_decimal(self.total_payout, domain.MONEY_DP)

    @property
    def total_initial_value_dec(self) -> Decimal:
        return domain.to_decimal(self.total_initial_value, domain.MONEY_DP)

    @property
    def total_pnl_dec(self) -> Decimal:
        return domain.to_decimal(self.total_pnl, domain.MONEY_DP)

    @property
    def exact(self) -> bool:
        """Σ payouts = q . S_t2 and Σ P&L = 0, both exactly (what the settlement guarantees)."""
        return self.total_payout == self.expected and self.total_pnl == 0

    def totals(self) -> dict[str, Any]:
        return {
            "payout": money_text(self.total_payout),
            "expected": money_text(self.expected),
            "initial_value": money_text(self.total_initial_value),
            "pnl": money_text(self.total_pnl),
            "exact": self.exact,
        }

    def as_json(self) -> dict[str, Any]:
        """The API's shape (`GET /api/v1/sessions/{id}/results`)."""
        return {
            "session_id": self.session.id,
            "legs": self.legs,
            "prices": {leg: domain.price_str(p) for leg, p in zip(self.legs, self.prices, strict=True)},
            "settled_at": self.settled_at,
            "results": [r.as_json() for r in self.rows],
            "totals": self.totals(),
            "haircut": self.haircut,
        }


def not_settled(session: Session, what: str) -> Conflict:
    return Conflict(
        f"Session {session.id} is not settled ({session.status}): {what} exist once it settles", "not_settled"
    )


def session_results(session: Session) -> Results:
    """The results of a settled session from its projection (409 `not_settled` before)."""
    settlement = Settlement.objects.filter(session_id=session.id).first()
    if session.status != Session.Status.SETTLED or settlement is None:
        raise not_settled(session, "results")
    legs = list(session.legs)
    prices = [int(settlement.prices[leg]) for leg in legs]
    x: dict[int, list[int]] = {}
    initial: dict[int, list[int]] = {}
    for pid, k, qty, first in Holding.objects.filter(session_id=session.id).values_list(
        "participant_id", "leg_index", "qty", "initial"
    ):
        x.setdefault(pid, [0] * len(legs))[k] = qty
        initial.setdefault(pid, [0] * len(legs))[k] = first
    recorded = Payout.objects.filter(session_id=session.id).values_list("participant_id", "amount", "gross")
    paid = {pid: amount for pid, amount, _ in recorded}
    gross = {pid: money_base(before) for pid, _, before in recorded if before}
    people = Participant.objects.filter(session_id=session.id, id__in=paid).values_list(
        "id", "user_id", "username", "display_name", "role"
    )
    zero = [0] * len(legs)
    initial_cash = projections_actions.initial_cash_of(session.id)  # corporate actions on the initial allocation
    entries = [
        Entry(
            user_id,
            username,
            name,
            role,
            tuple(x.get(pid, zero)),
            tuple(initial.get(pid, zero)),
            money_base(paid[pid]),
            gross.get(pid),
            initial_cash.get(user_id, 0),
        )
        for pid, user_id, username, name, role in people
    ]
    return Results(
        session=session,
        legs=legs,
        prices=prices,
        settled_at=settlement.settled_at,
        fixing=settlement.fixing,
        rows=ranked(entries, prices),
        expected=domain.payout(session.q, prices) + sum(projections_actions.cash_of(session.id).values()),
        deficit=money_base(settlement.deficit) if settlement.deficit else 0,
    )
