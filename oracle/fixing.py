"""How S_t2 is taken from the ticks: each leg's observations read once, the session's rule made over them
(`oracle.fixing_rules.fix_leg`, pure), and the record of how, which `verify_ledger` redoes (`redo`).

The conventions of each rule are in `oracle.fixing_methods` and `oracle.fixing_rules`; docs/fixings.md
works an example of each by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from django.db import connection
from django.db.models import CharField, QuerySet
from django.db.models.functions import Cast

from oracle.fixing_methods import Insufficient, Obs, split_factor
from oracle.fixing_rules import RULES, InvalidRule, describe, fix_leg, reach, validate_rule
from oracle.models import Tick

__all__ = [
    "RULES", "Fixing", "InvalidRule", "MissingPrice", "describe", "progress", "reach", "redo", "take_fixing",
    "validate_rule",
]  # fmt: skip

_PLAIN = "no tick at or before the end of the window"


class MissingPrice(Exception):
    """No fixing for some legs: `reasons` says per leg why each tier could not answer."""

    def __init__(self, legs: Sequence[str], at: dt.datetime, reasons: Mapping[str, str] | None = None) -> None:
        self.legs = list(legs)
        self.at = at
        self.reasons = dict(reasons or {})
        said = f"no price for {', '.join(self.legs)} at or before {_shown(at)} UTC"
        legs_by_reason: dict[str, list[str]] = {}  # legs that fail alike are said once, not once per leg
        for leg, reason in self.reasons.items():
            if not reason.endswith(_PLAIN):
                legs_by_reason.setdefault(reason, []).append(leg)
        if legs_by_reason:
            said += " (" + "; ".join(f"{', '.join(ls)}: {r}" for r, ls in legs_by_reason.items()) + ")"
        super().__init__(said)


def _shown(at: dt.datetime) -> str:
    utc = at.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f" if utc.microsecond else "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Fixing:
    prices: dict[str, int]
    ticks: dict[str, list[int]]  # per leg, the ids of the ticks the value came from
    rule: dict
    at: dt.datetime  # the scheduled instant (t2; for a session settled by hand, the moment it was)
    end: dt.datetime | None = None  # where the window ended (t2 + after, or earlier when cut by hand)
    legs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per leg, `fix_leg`'s record and the read
    # (`read`: the ids of every tick looked at, `prices` and `volumes`: theirs, aligned)

    def record(self, iso) -> dict[str, Any]:
        """What `SessionSettled.fixing` says of it, instants written by `iso`."""
        before, after = reach(self.rule)
        return {
            "rule": self.rule,
            "at": iso(self.at),
            "end": iso(self.end or self.at),
            "window": {"before": before, "after": after},
            "described": describe(self.rule),
            "ticks": self.ticks,
            "legs": self.legs,
            "source": "oracle",
        }


def window_end(spec: dict, t2: dt.datetime) -> dt.datetime:
    """When the rule's window closes: t2, or t2 + after for a centred window (the settlement waits)."""
    return t2 + dt.timedelta(seconds=reach(spec)[1])


Splits = Mapping[str, Sequence[tuple[dt.datetime, Fraction]]]  # per leg: (cut, ratio) of each split applied


def take_fixing(
    session_id: str,
    legs: Sequence[str],
    at: dt.datetime,
    spec: dict,
    end: dt.datetime | None = None,
    splits: Splits | None = None,
) -> Fixing:
    """Every leg's fixing scheduled at `at` under the rule, its window ending at `end` (by default where
    the rule ends it); raises MissingPrice naming each leg without one and why. A tick from before a split
    of its leg (`splits`) counts at its price divided by the ratio, its volume multiplied (CRSP's
    adjustment), so a window across the cut reads one price level; the record says which were adjusted."""
    spec = validate_rule(spec)
    end = window_end(spec, at) if end is None else end
    prices, used, records, reasons = {}, {}, {}, {}
    for leg in legs:
        raw = observations(session_id, leg, spec, at, end)
        cuts = list((splits or {}).get(leg, ()))
        obs = adjusted(raw, cuts)
        try:
            made = fix_leg(obs, spec, at, end)
        except Insufficient as exc:
            reasons[leg] = exc.reason
            continue
        prices[leg] = made["value"]
        used[leg] = made["used"]
        read, _ats, read_prices, volumes, _sources = zip(*raw, strict=True) if raw else ((),) * 5
        records[leg] = made | {"read": list(read), "prices": list(read_prices), "volumes": list(volumes)}
        if cuts and obs != raw:
            records[leg]["splits"] = [
                [c.astimezone(dt.UTC).isoformat(), f"{r.numerator}/{r.denominator}"] for c, r in cuts
            ]
    if reasons:
        raise MissingPrice(list(reasons), at, reasons)
    return Fixing(prices=prices, ticks=used, rule=spec, at=at, end=end, legs=records)


def adjusted(obs: list[Obs], cuts: Sequence[tuple[dt.datetime, Fraction]]) -> list[Obs]:
    """The observations with each one stamped before a split's cut (its effective instant) at the price level after it: its price
    divided by the ratio (floored to the price unit), its volume multiplied (floored to the unit)."""
    if not cuts:
        return obs
    out = []
    for o in obs:
        factor = split_factor(o.at, cuts)
        if factor == 1:
            out.append(o)
            continue
        volume = None if o.volume is None else int(o.volume * factor)
        out.append(o._replace(price=int(o.price / factor), volume=volume))
    return out


def observations(session_id: str, leg: str, spec: dict, t2: dt.datetime, end: dt.datetime) -> list[Obs]:
    """One leg's ticks the rule may look at, oldest first: those in the widest window it has, and before
    it the last tick overall and the last of each source it names (the price in force when a window
    opens; `last` and `close`)."""
    before, after = reach(spec)
    stop = min(t2 + dt.timedelta(seconds=after), end)
    ticks = Tick.objects.filter(session_id=session_id, symbol=leg)
    fields = ("id", "at", "price", "volume", "source")
    lo = t2 - dt.timedelta(seconds=before) if before else stop
    earlier = ticks.filter(at__lte=lo).order_by("-at", "-id")
    opening: dict[int, tuple] = {}
    for source in (None, *_named_sources(spec)):
        chosen = (earlier if source is None else earlier.filter(source=source)).values_list(*fields).first()
        if chosen is not None:
            opening[chosen[0]] = chosen
    out = sorted(map(Obs._make, opening.values()), key=lambda o: (o.at, o.id))
    if before:  # the window's ticks, all after those: in the database's order, none sorted here
        out += _window_rows(ticks.filter(at__gt=lo, at__lte=stop).order_by("at", "id"))
    return out


def _window_rows(ticks: QuerySet) -> Iterable[Obs]:
    """A window's ticks as observations. On SQLite each instant is read as the text stored and parsed in C
    (`fromisoformat`, UTC as Django stores it): Django's converter, row by row, was most of the time a
    window of a million ticks took. PostgreSQL's driver gives aware instants itself."""
    if connection.vendor != "sqlite":
        return map(Obs._make, ticks.values_list("id", "at", "price", "volume", "source"))
    parse = dt.datetime.fromisoformat
    rows = ticks.annotate(stamp=Cast("at", CharField())).values_list("id", "stamp", "price", "volume", "source")
    return (Obs(i, parse(stamp + "+00:00"), price, volume, source) for i, stamp, price, volume, source in rows)


def _named_sources(spec: dict) -> list[str]:
    if spec["rule"] == "fallback":
        return sorted({s for t in spec["tiers"] for s in _named_sources(t)})
    if spec["rule"] == "composite":
        return sorted(set(spec.get("sources", [])) | set(_named_sources(spec["inner"])))
    return [spec["source"]] if "source" in spec else []


def progress(
    session_id: str, legs: Sequence[str], spec: dict, t2: dt.datetime, now: dt.datetime, splits: Splits | None = None
) -> list[dict]:
    """Per leg, the window so far (from its start to now): its ticks, the volume traded, and what the rule
    would make now (value and tier) or why it cannot yet. For the floor, between the window's start and t2."""
    spec = validate_rule(spec)
    before, _after = reach(spec)
    start = t2 - dt.timedelta(seconds=before)
    out = []
    for leg in legs:
        obs = adjusted(observations(session_id, leg, spec, t2, now), list((splits or {}).get(leg, ())))
        inside = [o for o in obs if o.at > start]
        row = {"leg": leg, "ticks": len(inside), "volume": sum(o.volume or 0 for o in inside)}
        try:
            made = fix_leg(obs, spec, t2, now)
            row |= {"value": made["value"], "tier": made["tier"], "rule": made["rule"], "passed": made["passed"]}
        except Insufficient as exc:
            row |= {"value": None, "tier": None, "rule": None, "reason": exc.reason}
        out.append(row)
    return out


def redo(session_id: str, legs: Sequence[str], fixing: Mapping[str, Any], prices: Mapping[str, int]) -> list[str]:
    """Problems found making a recorded fixing again from the ticks it names and its rule (empty: it holds).
    A record from before the per-leg record (only `ticks`, the ticks used) is redone from those."""
    try:
        spec = validate_rule(fixing["rule"])
        t2 = dt.datetime.fromisoformat(fixing["at"])
        end = dt.datetime.fromisoformat(fixing.get("end") or fixing["at"])
    except (InvalidRule, KeyError, TypeError, ValueError) as exc:
        return [f"the fixing's rule or instants cannot be read ({exc})"]
    recorded = fixing.get("legs") or {}
    problems = []
    for leg in legs:
        mine = recorded.get(leg)
        ids = mine["read"] if mine else (fixing.get("ticks") or {}).get(leg, [])
        fields = ("id", "at", "price", "volume", "source", "symbol", "session_id")
        found = {t[0]: t for t in Tick.objects.filter(id__in=ids).values_list(*fields)}
        missing = [i for i in ids if i not in found or found[i][5] != leg or found[i][6] != session_id]
        if missing:
            problems.append(f"{leg}: tick(s) {missing[:5]} named by the fixing are not {leg}'s ticks in this session")
            continue
        obs = sorted((Obs(*found[i][:5]) for i in ids), key=lambda o: (o.at, o.id))
        cuts = [(dt.datetime.fromisoformat(c), Fraction(r)) for c, r in (mine or {}).get("splits", ())]
        obs = adjusted(obs, cuts)
        if mine and [found[i][3] for i in ids] != mine.get("volumes"):
            problems.append(f"{leg}: the volumes recorded differ from the ticks'")
        if mine and "prices" in mine and [found[i][2] for i in ids] != mine["prices"]:
            problems.append(f"{leg}: the prices recorded differ from the ticks'")  # even where the value would not move
        try:
            again = fix_leg(obs, spec, t2, end)
        except Insufficient as exc:
            problems.append(f"{leg}: the fixing cannot be made again from the ticks it names ({exc.reason})")
            continue
        if again["value"] != prices.get(leg):
            problems.append(f"{leg}: the fixing makes {again['value']} again, the settlement used {prices.get(leg)}")
        if mine:
            kept = {k: v for k, v in mine.items() if k not in ("read", "prices", "volumes", "splits")}
            if kept != again:
                differ = sorted(k for k in set(kept) | set(again) if kept.get(k) != again.get(k))
                problems.append(f"{leg}: the record differs from the fixing made again in {', '.join(differ)}")
    return problems
