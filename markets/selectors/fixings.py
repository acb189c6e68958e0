"""The fixing as people see it: the rule in words; while its window runs, its progress per leg (ticks and
volume so far, the value and the tier that would answer now, or why none would); while the settlement
waits, what is missing per leg and tier; the organiser's preview of settling now; and, once settled, the
record (`record_view`, for the results page and the floor's settled panel).

A tick changes the floor's fixing panel only while the window runs (`FixingPanel.live`): then each tick
push reads the progress (`oracle.fixing.progress`); otherwise it reads nothing and the push leaves the
panel as the page drew it (markets.push.render). A session whose rule is `last` has no window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from ledger import clock
from markets import domain
from markets.models import Session
from markets.selectors import fixing_record
from markets.selectors.prices import splits_of
from oracle import fixing
from oracle.fixing_methods import Insufficient
from oracle.fixing_rules import InvalidRule, fix_leg, reach, validate_rule


def fixing_preview(session: Session) -> dict[str, Any]:
    """What settling now would use: the fixing rule's prices, or why it cannot."""
    now = clock.now()
    timed = session.end_mode == Session.EndMode.TIMED and session.t2
    at = session.t2 if timed else now
    end = min(now, fixing.window_end(session.fixing_rule, at)) if timed else at  # settling now ends the window
    try:
        taken = fixing.take_fixing(session.id, session.legs, at, session.fixing_rule, end, splits=splits_of(session))
    except fixing.MissingPrice as exc:
        return {"ok": False, "reason": str(exc), "at": at, "described": described(session.fixing_rule)}
    return {
        "ok": True,
        "at": at,
        "rule": taken.rule,
        "described": fixing.describe(taken.rule),
        "prices": [(leg, domain.to_decimal(taken.prices[leg], domain.PRICE_DP)) for leg in session.legs],
    }


def described(rule: Any) -> str:
    """The rule in words; a rule that no longer checks (never written by this code) as its JSON."""
    try:
        return fixing.describe(validate_rule(rule))
    except InvalidRule:
        return str(rule)


def volume_dec(volume: int | None) -> Decimal | None:
    """A volume (10**-6 units) as an exact Decimal for display; None stays None (no volume)."""
    return None if volume is None else domain.to_decimal(volume, 6)


def _price(value: int | None) -> Decimal | None:
    return None if value is None else domain.to_decimal(value, domain.PRICE_DP)


# ---------------------------------------------------------------- the floor's panel


@dataclass
class TierSaid:
    """One tier of the rule as it stands for one leg: its number (1 = first), its rule, and the value it
    gives or why it cannot."""

    number: int
    rule: str
    value: Decimal | None = None
    reason: str = ""


@dataclass
class LegProgress:
    leg: str
    ticks: int  # in the window so far
    volume: Decimal  # units traded in the window so far (ticks without a volume count 0)
    value: Decimal | None  # what the rule would make now (None: it cannot yet)
    tier: int | None  # the tier that would answer (1 = the first), None when none would
    rule: str | None
    passed: list[TierSaid] = field(default_factory=list)  # the tiers above it, with why each cannot
    missing: list[TierSaid] = field(default_factory=list)  # no tier answers: every tier with why


@dataclass
class FixingPanel:
    """The floor's fixing panel: the rule in words, the window, where it stands, and its progress."""

    rule: dict
    described: str
    tiers: int  # 1 for a rule without a ladder
    state: str  # "instant" (no window: last, close), "manual" (no t2), "before", "running", "closed", "settled"
    t2: dt.datetime | None = None
    start: dt.datetime | None = None  # the window opens (t2 - before)
    end: dt.datetime | None = None  # and closes (t2 + after)
    legs: list[LegProgress] = field(default_factory=list)
    waiting: str = ""  # the reason the settlement waits, as recorded (SettlementWaiting)
    manual_allowed: bool = False  # ALLOW_MANUAL_SETTLE: the organiser may settle by hand
    settled: dict | None = None  # once settled: `record_view` of the settlement's record

    @property
    def live(self) -> bool:
        """A tick changes this panel: its window is running."""
        return self.state == "running"

    @property
    def centred(self) -> bool:
        return bool(self.t2 and self.end and self.end > self.t2)


def fixing_panel(session: Session, now: dt.datetime | None = None, *, progress: bool = True) -> FixingPanel:
    """Where the session's fixing stands at `now`. Its progress is read (a few statements per leg) only
    while the window runs or the settlement waits; `progress=False` reads none."""
    now = now or clock.now()
    rule = validate_rule(session.fixing_rule)
    before, after = reach(rule)
    panel = FixingPanel(
        rule=rule,
        described=fixing.describe(rule),
        tiers=len(rule["tiers"]) if rule["rule"] == "fallback" else 1,
        state="instant",
        waiting=session.waiting_reason if session.status != Session.Status.SETTLED else "",
        manual_allowed=settings.ALLOW_MANUAL_SETTLE,
    )
    settlement = getattr(session, "settlement", None) if session.status == Session.Status.SETTLED else None
    if settlement is not None:
        panel.state = "settled"
        panel.settled = record_view(settlement.fixing, session.legs)
        return panel
    if session.end_mode != Session.EndMode.TIMED or session.t2 is None:
        panel.state = "manual" if before else "instant"
        return panel
    panel.t2 = session.t2
    panel.start = session.t2 - dt.timedelta(seconds=before)
    panel.end = session.t2 + dt.timedelta(seconds=after)
    if not before:  # last, close: one instant, nothing to follow
        panel.state = "closed" if now > session.t2 and session.status != Session.Status.CANCELLED else "instant"
    elif session.status in (Session.Status.CREATED, Session.Status.CANCELLED) or now <= panel.start:
        panel.state = "before"
    elif now <= panel.end:
        panel.state = "running"
    else:
        panel.state = "closed"
    if progress and (panel.state == "running" or (panel.state == "closed" and panel.waiting)):
        panel.legs = leg_progress(session, rule, min(now, panel.end))
    return panel


def leg_progress(session: Session, rule: dict, now: dt.datetime) -> list[LegProgress]:
    """`oracle.fixing.progress` per leg as the panel shows it; a leg no tier answers is told tier by tier
    (the ladder's joined reason split where it was joined: each tier made again alone)."""
    rows = []
    for row in fixing.progress(session.id, session.legs, rule, session.t2, now, splits=splits_of(session)):
        shown = LegProgress(
            leg=row["leg"],
            ticks=row["ticks"],
            volume=volume_dec(row["volume"]) or Decimal(0),
            value=_price(row["value"]),
            tier=None if row["tier"] is None else row["tier"] + 1,
            rule=row["rule"],
            passed=[TierSaid(p["tier"] + 1, p["rule"], reason=p["reason"]) for p in row.get("passed", [])],
        )
        if row["value"] is None:
            shown.missing = tiers_alone(session, row["leg"], rule, now)
        rows.append(shown)
    return rows


def tiers_alone(session: Session, leg: str, rule: dict, end: dt.datetime) -> list[TierSaid]:
    """Each tier of the rule made alone over one leg's observations up to `end`: its value or its reason."""
    tiers = rule["tiers"] if rule["rule"] == "fallback" else [rule]
    obs = fixing.observations(session.id, leg, rule, session.t2, end)
    said = []
    for i, tier in enumerate(tiers):
        try:
            said.append(TierSaid(i + 1, tier["rule"], value=_price(fix_leg(obs, tier, session.t2, end)["value"])))
        except Insufficient as exc:
            said.append(TierSaid(i + 1, tier["rule"], reason=exc.reason))
    return said


# ---------------------------------------------------------------- the settlement's record


def _instant(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def record_view(record: Any, legs: list[str]) -> dict[str, Any]:
    """A settlement's fixing record as the results page shows it, read by the one reader of records
    (`fixing_record.read_record`, as the API, the admin and the export read it): the rule in words, the
    window, and per leg the value, the tier that answered and why those above did not, the ticks used
    (their ids), the sources, the volume and the sources dropped as outliers. A record from before the
    per-leg record says what it has (the ticks used); a settlement at prices given by hand says so."""
    read = fixing_record.read_record(record, {}, legs)
    manual = read.source == "manual"
    at, end = _instant(read.at), _instant(read.end)
    view: dict[str, Any] = {
        "manual": manual,
        "rule_name": read.rule.get("rule", ""),
        "described": "prices given by hand" if manual else read.described,
        "at": at,
        "end": end,
        "start": None,
        "tiers": len(read.rule.get("tiers", [])) or 1,
        "legs": [],
        "detailed": read.detailed,
    }
    if at and read.window:
        view["start"] = at - dt.timedelta(seconds=read.window.get("before", 0))
        view["cut_short"] = bool(end and end < at + dt.timedelta(seconds=read.window.get("after", 0)))
    if manual:
        return view
    for leg in read.legs:
        if leg.read is None:  # a record from before the per-leg record: the ticks used, no more
            view["legs"].append({"leg": leg.leg, "used": leg.used, "count": len(leg.used), "old": True})
            continue
        view["legs"].append(
            {
                "leg": leg.leg,
                "value": _price(leg.value),
                "tier": (leg.tier or 0) + 1,
                "rule": leg.rule,
                "passed": [TierSaid(p["tier"] + 1, p["rule"], reason=p["reason"]) for p in leg.passed],
                "used": leg.used,
                "count": len(leg.used),
                "read": len(leg.read),
                "sources": leg.sources,
                "volume": volume_dec(leg.volume),
                "by_source": [(name, _price(p)) for name, p in (leg.by_source or {}).items()],
                "dropped": [(name, _price(p)) for name, p in (leg.dropped or {}).items()],
                "refused": list((leg.refused or {}).items()),
            }
        )
    return view


__all__ = ["FixingPanel", "fixing_panel", "fixing_preview", "record_view"]
