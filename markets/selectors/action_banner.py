"""Corporate actions as people read them (issue #33): the floor's banner before and after each action, the
log's one line, the monitor's list, and each holder's cash. Read from the actions' read model
(`markets.action_models.CorporateAction`: its params as scheduled, its result as CorporateActionApplied
recorded it); the numbers stay exact (base units shown in their shortest exact text).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from markets import domain
from markets.models import CorporateAction
from markets.projections_actions import cash_of
from oracle import units

# An applied action stays on the floor's banner this long after its cut (the monitor lists it for ever).
RECENT = dt.timedelta(minutes=30)


def qty(base: int) -> str:
    return units.short(int(base), domain.QTY_DP)


def money(base: int) -> str:
    return units.short(int(base), domain.MONEY_DP)


money_base = domain.money_base


def ratio_said(text: str) -> str:
    """ "10/1" as a split is said, "10:1"; a reverse split "1:10"."""
    ratio = Fraction(text)
    return f"{ratio.numerator}:{ratio.denominator}"


def terms(kind: str, leg: str, params: dict[str, str], past: bool = False) -> str:
    """What the action does, in a few words: "NVDA splits 10:1" (or, once applied, "NVDA split 10:1")."""
    if kind == "split":
        reverse = Fraction(params["ratio"]) < 1
        verb = ("reverse-split" if past else "reverse-splits") if reverse else ("split" if past else "splits")
        return f"{leg} {verb} {ratio_said(params['ratio'])}"
    if kind == "dividend":
        amount = units.short(domain.parse_price(params["amount"], "amount"), domain.PRICE_DP)
        return f"{leg} {'paid' if past else 'pays'} a dividend of {amount} per unit"
    if kind == "merger" and "cash" in params:
        cash = units.short(domain.parse_price(params["cash"], "cash"), domain.PRICE_DP)
        return f"{leg} {'was' if past else 'is'} bought out at {cash} per unit in cash"
    if kind == "merger":
        return f"{leg} {'merged' if past else 'merges'} into {params['into']} at {params['ratio']} {params['into']} per {leg}"
    if kind == "rename":
        return f"{leg} {'was' if past else 'is'} renamed {params['to']}"
    return f"{kind} of {leg}"


def params_said(kind: str, params: dict[str, str]) -> str:
    """The parameters as scheduled, exact: "ratio 10/1", "amount 0.250000"."""
    return ", ".join(f"{name} {value}" for name, value in sorted(params.items()))


def in_words(seconds: float) -> str:
    """How long until a cut, in the fewest words: "in 45 s", "in 3 min", "in 2 h 05 min", "in 3 days"."""
    s = int(seconds)
    if s < 60:
        return f"in {max(s, 0)} s"
    if s < 3600:
        return f"in {-(-s // 60)} min"
    if s < 2 * 86400:
        return f"in {s // 3600} h {s % 3600 // 60:02d} min"
    return f"in {s // 86400} days"


def when(at: dt.datetime, now: dt.datetime) -> str:
    """A cut as the banner says it: "14:05 UTC" today, with its date on another day, seconds when it has."""
    at = at.astimezone(dt.UTC)
    clock = at.strftime("%H:%M:%S" if at.second or at.microsecond else "%H:%M")
    return f"{clock} UTC" if at.date() == now.astimezone(dt.UTC).date() else f"{at:%Y-%m-%d} {clock} UTC"


@dataclass
class ActionView:
    """One action, for the banner and the monitor."""

    number: int
    kind: str
    leg: str
    effective_at: dt.datetime
    status: str
    params: str  # as scheduled, exact
    said: str  # the banner's line
    q_moved: list[tuple[str, str, str]] = field(default_factory=list)  # (leg, q before, q after) of legs it moved
    cash_total: str | None = None  # the cash it recorded, all holders together (money text), when any
    leftover: int = 0  # base units given by largest remainder
    applied_at: dt.datetime | None = None
    due: bool = False  # its cut has come and the scheduler has not applied it yet
    deltas: dict[str, list[int]] = field(default_factory=dict)  # applied: each holder's units moved, per leg
    scaled: bool = False  # units made from units (a split, a merger into a leg): leftover units and cash in lieu

    @property
    def applied(self) -> bool:
        return self.status == CorporateAction.Status.APPLIED


def _scheduled_line(a: CorporateAction, now: dt.datetime) -> tuple[str, bool]:
    left = (a.effective_at - now).total_seconds()
    due = left <= 0
    soon = "due now: waiting for the scheduler" if due else in_words(left)
    then = f"open RFQs and orders on {a.leg} are cancelled then"
    if a.kind == "dividend":
        then = f"each holder's cash is credited x · amount; {then}"
    elif a.kind == "merger":
        then = f"holdings of {a.leg} are converted and it closes for trading; {then}"
    return f"{terms(a.kind, a.leg, a.params)} at {when(a.effective_at, now)} ({soon}): {then}", due


def moved(kind: str, leg: str, params: dict[str, str], record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(leg, q before, q after) of the legs the action moved, named from the record alone: the action's leg,
    and in a merger into another leg that leg too (the record's q lists follow the legs' order)."""
    before, after = record.get("q_before", []), record.get("q_after", [])
    changed = [k for k, (b, x) in enumerate(zip(before, after, strict=False)) if b != x]
    if kind == "merger" and "into" in params:
        changed.sort(key=lambda k: after[k] != 0)  # the merged leg (now empty) first, then the one it went into
        names = [leg, params["into"]]
    else:
        names = [leg]
    return [(name, qty(before[k]), qty(after[k])) for name, k in zip(names, changed, strict=False)]


def cash_total(record: dict[str, Any]) -> int:
    """The cash an applied action recorded, all holders together (money base units, either sign)."""
    return sum(money_base(c) for c in record.get("cash_by_id", {}).values())


def outcome_said(kind: str, leg: str, params: dict[str, str], record: dict[str, Any]) -> str:
    """What applying it did, in a line: "q 60 → 600, 0.000012 of cash in lieu paid"."""
    legs = moved(kind, leg, params, record)
    if len(legs) == 1:
        q = f"q {legs[0][1]} → {legs[0][2]}"
    else:
        q = "q " + ", ".join(f"{name} {before} → {after}" for name, before, after in legs) or "q unchanged"
    cash = cash_total(record)
    if kind == "split" or (kind == "merger" and "into" in params):
        paid = f"{money(cash)} of cash in lieu paid" if record.get("cash_by_id") else "no cash in lieu"
        leftover = len(record.get("leftover", []))
        spread = (
            f", {leftover} leftover base unit{'s' if leftover != 1 else ''} by largest remainder" if leftover else ""
        )
        return f"{q}, {paid}{spread}"
    if kind == "dividend":
        return f"{money(cash)} credited to the holders' cash, paid with the payout"
    if kind == "merger":
        return f"{q}, {money(cash)} paid as cash with the payout"
    return "its identity and history stay"


def scheduled_summary(d: dict[str, Any]) -> str:
    """CorporateActionScheduled in the log's one line."""
    at = dt.datetime.fromisoformat(d["effective_at"].replace("Z", "+00:00"))
    return f"action {d['action']} scheduled: {terms(d['kind'], d['leg'], d['params'])} at {domain.when(at)}"


def applied_summary(d: dict[str, Any]) -> str:
    """CorporateActionApplied in the log's one line, from its own payload (which names the ratio, and for
    a merger into another leg not that leg: the line calls it "the other leg")."""
    kind, leg, head = d["kind"], d["leg"], f"action {d['action']} applied"
    if kind == "split":
        return f"{head}: {terms(kind, leg, {'ratio': d['ratio']}, past=True)}: {outcome_said(kind, leg, d, d)}"
    if kind == "dividend":
        return f"{head}: {leg} dividend: {outcome_said(kind, leg, {}, d)}"
    if kind == "merger" and "ratio" in d:
        said = outcome_said(kind, leg, {"into": "the other leg", "ratio": d["ratio"]}, d)
        return f"{head}: {leg} merged into another leg at {d['ratio']} per unit: {said}"
    if kind == "merger":
        return f"{head}: {leg} bought out in cash: {outcome_said(kind, leg, {'cash': ''}, d)}"
    return f"{head}: {leg} renamed {d.get('to', '?')}"


def view(a: CorporateAction, now: dt.datetime) -> ActionView:
    v = ActionView(a.number, a.kind, a.leg, a.effective_at, a.status, params_said(a.kind, a.params), "")
    v.scaled = a.kind == "split" or (a.kind == "merger" and "into" in a.params)
    if a.status == CorporateAction.Status.APPLIED:
        record = a.result or {}
        v.q_moved = moved(a.kind, a.leg, a.params, record)
        v.cash_total = money(cash_total(record)) if record.get("cash_by_id") else None
        v.leftover = len(record.get("leftover", []))
        v.deltas = record.get("deltas_by_id", {})
        v.applied_at = a.applied_at
        said = f"{terms(a.kind, a.leg, a.params, past=True)} at {when(a.effective_at, now)}"
        v.said = f"{said}: {outcome_said(a.kind, a.leg, a.params, record)}"
    else:
        v.said, v.due = _scheduled_line(a, now)
    return v


def session_actions(session, now: dt.datetime) -> list[ActionView]:
    """Every action of the session, by cut (the monitor's list), in one read."""
    rows = CorporateAction.objects.filter(session_id=session.id).order_by("effective_at", "number")
    return [view(a, now) for a in rows]


def banner(actions: list[ActionView], now: dt.datetime) -> list[ActionView]:
    """What the floor's banner says: every action still to come, and those applied in the last RECENT."""
    return [a for a in actions if not a.applied or (a.applied_at and now - a.applied_at <= RECENT)]


def paid_cash(actions: list[ActionView]) -> bool:
    """Whether any applied action recorded cash (then each holder's cash is worth showing)."""
    return any(a.cash_total is not None for a in actions)


def cash_by_user(session_id: str) -> dict[int, Decimal]:
    """Each holder's cash from the actions (dividends, cash in lieu, cash mergers), those with some."""
    return {u: domain.to_decimal(c, domain.MONEY_DP) for u, c in cash_of(session_id).items()}


def attach_cash(session_id: str, actions: list[ActionView], holdings: list) -> None:
    """Each holding row's `cash` (the floor's and the monitor's), read only when an action paid some."""
    if not paid_cash(actions):
        return
    cash = cash_by_user(session_id)
    for row in holdings:
        row.cash = cash.get(row.user_id)
