"""The settlement's fixing record (`SessionSettled.fixing`, `oracle.fixing.Fixing.record`) as people and
programs read it: one reading per leg for the payouts API, the admin and the export (`fixing.csv` and the
reconciliation's fixing columns), so the three say the same thing.

Three kinds of record are read: one made by the oracle since fixings record per leg how they were made
(`legs`: the tier that answered, why the tiers above could not, the ticks read and used, sources, volume,
a composite's sources), one from before that (only `rule`, `at`, `ticks`: the ticks used), and a settlement
at prices given by hand (`source: manual`, no ticks). The last two still read, with what they carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markets import domain
from oracle import fixing_rules

MANUAL_WORDS = "prices given by hand at the settlement (no fixing rule)"


def rule_words(rule: object) -> str:
    """A session's rule, or a record's, in words (`oracle.fixing_rules.describe`); a manual settlement says
    so, and a rule the checker no longer reads is shown as written rather than refused."""
    if isinstance(rule, dict) and rule.get("rule") == "manual":
        return MANUAL_WORDS
    try:
        return fixing_rules.describe(fixing_rules.validate_rule(rule))
    except (fixing_rules.InvalidRule, KeyError, TypeError):
        return f"rule as recorded: {rule!r}"[:300]


@dataclass
class LegFixing:
    """One leg's fixing as the record says it (fields the record does not carry are None or empty)."""

    leg: str
    value: int | None
    rule: str
    tier: int | None = None
    passed: list[dict[str, Any]] = field(default_factory=list)
    used: list[int] = field(default_factory=list)
    read: list[int] | None = None
    sources: list[str] = field(default_factory=list)
    volume: int | None = None
    by_source: dict[str, int] | None = None
    dropped: dict[str, int] | None = None
    refused: dict[str, str] | None = None

    @property
    def passed_text(self) -> str:
        """Why each tier above the one that answered could not: `tier 0 vwap: volume 0 in the window; ...`."""
        return "; ".join(f"tier {p.get('tier')} {p.get('rule')}: {p.get('reason')}" for p in self.passed)


@dataclass
class FixingRecord:
    """A settlement's fixing, read: the rule, its words, the instants and window, and every leg."""

    source: str  # oracle | manual
    rule: dict[str, Any]
    described: str
    at: str | None
    end: str | None
    window: dict[str, int] | None
    ticks: dict[str, list[int]]
    detailed: bool  # the record carries each leg's tier, reasons, read ticks and volume (since per-leg records)
    legs: list[LegFixing]


def read_record(fixing: object, prices: Mapping[str, int], legs: Sequence[str]) -> FixingRecord:
    """The record `fixing` of a settlement at `prices` (base units per leg) over the session's `legs`."""
    record = fixing if isinstance(fixing, dict) else {}
    rule = record.get("rule") if isinstance(record.get("rule"), dict) else {"rule": "manual"}
    manual = record.get("source") != "oracle"
    ticks = record.get("ticks") if isinstance(record.get("ticks"), dict) else {}
    per_leg = record.get("legs") if isinstance(record.get("legs"), dict) else {}
    window = record.get("window")
    if window is None and not manual:
        try:
            before, after = fixing_rules.reach(fixing_rules.validate_rule(rule))
            window = {"before": before, "after": after}
        except (fixing_rules.InvalidRule, KeyError, TypeError):
            window = None
    read = []
    for leg in legs:
        mine = per_leg.get(leg)
        value = prices.get(leg)
        if isinstance(mine, dict):
            read.append(
                LegFixing(
                    leg=leg,
                    value=mine.get("value", value),
                    rule=str(mine.get("rule", "")),
                    tier=mine.get("tier"),
                    passed=list(mine.get("passed") or []),
                    used=list(mine.get("used") or []),
                    read=list(mine["read"]) if isinstance(mine.get("read"), list) else None,
                    sources=list(mine.get("sources") or []),
                    volume=mine.get("volume"),
                    by_source=mine.get("by_source"),
                    dropped=mine.get("dropped"),
                    refused=mine.get("refused"),
                )
            )
        else:
            used = ticks.get(leg) if isinstance(ticks.get(leg), list) else []
            read.append(LegFixing(leg=leg, value=value, rule="manual" if manual else str(rule.get("rule", "")),
                                  used=list(used)))  # fmt: skip
    return FixingRecord(
        source="manual" if manual else "oracle",
        rule=rule,
        described=str(record.get("described") or rule_words(rule)),
        at=record.get("at"),
        end=record.get("end") or record.get("at"),
        window=window if isinstance(window, dict) else None,
        ticks={leg: list(ids) for leg, ids in ticks.items() if isinstance(ids, list)},
        detailed=bool(per_leg),
        legs=read,
    )


def _prices(values: Mapping[str, int] | None) -> dict[str, str] | None:
    return None if values is None else {name: domain.price_str(int(p)) for name, p in values.items()}


def leg_out(leg: LegFixing) -> dict[str, Any]:
    """A leg's fixing for the API: prices as price text, the volume as units text."""
    return {
        "value": domain.price_str(int(leg.value)) if leg.value is not None else None,
        "tier": leg.tier,
        "rule": leg.rule,
        "passed": [{"tier": p.get("tier"), "rule": p.get("rule"), "reason": p.get("reason")} for p in leg.passed],
        "used": leg.used,
        "read": leg.read,
        "sources": leg.sources,
        "volume": domain.qty_str(int(leg.volume)) if leg.volume is not None else None,
        "by_source": _prices(leg.by_source),
        "dropped": _prices(leg.dropped),
        "refused": dict(leg.refused) if leg.refused is not None else None,
    }


def fixing_out(fixing: object, prices: Mapping[str, int], legs: Sequence[str]) -> dict[str, Any]:
    """The settlement's fixing as `GET .../payouts` and `POST .../settle` answer it."""
    record = read_record(fixing, prices, legs)
    return {
        "source": record.source,
        "rule": record.rule,
        "described": record.described,
        "at": record.at,
        "end": record.end,
        "window": record.window,
        "ticks": record.ticks,
        "detailed": record.detailed,
        "legs": {leg.leg: leg_out(leg) for leg in record.legs},
    }


def named_prices(values: Mapping[str, int] | None) -> str:
    """`a=101.000000 b=102.000000`: a composite's sources and their own fixings, in one cell."""
    return " ".join(f"{name}={domain.price_str(int(p))}" for name, p in (values or {}).items())


def named_reasons(values: Mapping[str, str] | None) -> str:
    return "; ".join(f"{name}: {why}" for name, why in (values or {}).items())


LEG_COLUMNS = ("value", "tier", "rule", "passed", "ticks_used", "tick_ids", "ticks_read", "sources", "volume",
               "by_source", "dropped", "refused")  # fmt: skip


def leg_cells(leg: LegFixing) -> dict[str, str]:
    """A leg's fixing as text cells (fixing.csv, the admin): empty where the record does not say."""
    return {
        "value": domain.price_str(int(leg.value)) if leg.value is not None else "",
        "tier": "" if leg.tier is None else str(leg.tier),
        "rule": leg.rule,
        "passed": leg.passed_text,
        "ticks_used": str(len(leg.used)),
        "tick_ids": " ".join(map(str, leg.used)),
        "ticks_read": "" if leg.read is None else str(len(leg.read)),
        "sources": " ".join(leg.sources),
        "volume": domain.qty_str(int(leg.volume)) if leg.volume is not None else "",
        "by_source": named_prices(leg.by_source),
        "dropped": named_prices(leg.dropped),
        "refused": named_reasons(leg.refused),
    }
