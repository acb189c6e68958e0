"""The fixing in the export: `fixing.csv`, one row per leg of the settlement's fixing record as
`SessionSettled` carries it (the value, the tier that answered and why each tier above it could not, the
ticks used and read, sources, volume, a composite's sources kept, dropped and refused), and the per-leg
cells the reconciliation adds beside its `fixing` column. Read by `selectors.fixing_record`, as the API
and the admin read it; a record from before per-leg records and a manual settlement give what they carry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ledger.chain import format_at
from markets import domain
from markets.errors import Conflict
from markets.selectors.fixing_record import LEG_COLUMNS, FixingRecord, LegFixing, leg_cells, read_record

if TYPE_CHECKING:
    from markets.selectors.export import SessionExport

FIXING_HEADER = ["leg", "S_t2", "source", "rule", "described", "at", "end", "window_before", "window_after",
                 *("tier_rule" if c == "rule" else c for c in LEG_COLUMNS)]  # fmt: skip
# Added at the end of reconciliation.csv (its earlier columns stay where they were).
RECONCILIATION_EXTRA = ["fixing_tier", "fixing_passed", "fixing_sources", "fixing_volume"]


def instant(value: object) -> str:
    """A recorded instant as every other time in the export is written (as recorded if it cannot be read)."""
    if not isinstance(value, str):
        return ""
    try:
        return format_at(dt.datetime.fromisoformat(value))
    except ValueError:
        return value


def settled_record(export: SessionExport, settled: dict[str, Any]) -> FixingRecord:
    """The fixing record of a settlement (its SessionSettled event's data)."""
    prices = {leg: int(p) for leg, p in settled["prices"].items()}
    return read_record(settled.get("fixing"), prices, export.legs)


def fixing_rows(export: SessionExport) -> Iterator[list[str]]:
    """fixing.csv: per leg, S_t2 as the settlement used it and the record's account of how it was made."""
    settled = next((e.data for e in export.events(["SessionSettled"])), None)
    if settled is None:  # a settled status without its event: the log and projection disagree
        raise Conflict(f"Session {export.session.id} has no settlement in its log", "not_settled")
    record, prices = settled_record(export, settled), settled["prices"]
    window = record.window or {}
    for leg in record.legs:
        shown = domain.price_str(int(prices[leg.leg])) if leg.leg in prices else ""
        yield [leg.leg, shown, record.source, _rule_name(record), record.described, instant(record.at),
               instant(record.end), str(window.get("before", "")), str(window.get("after", "")),
               *leg_cells(leg).values()]  # fmt: skip


def _rule_name(record: FixingRecord) -> str:
    return str(record.rule.get("rule", "")) if record.source == "oracle" else "manual"


def leg_text(record: FixingRecord, leg: LegFixing) -> str:
    """The reconciliation's `fixing` cell for a leg: `last at <t>`, `median 60s at <t>` as ever, `manual`;
    a ladder or a composite says the tier that answered: `fallback tier 1 twap 60s at <t>`."""
    if record.source != "oracle":
        return "manual"
    rule = record.rule
    when = instant(record.at)
    name = rule.get("rule", "?")
    if name == "fallback" and leg.tier is not None and 0 <= leg.tier < len(rule.get("tiers", [])):
        tier = rule["tiers"][leg.tier]
        window = f" {tier['window']}s" if "window" in tier else ""
        return f"fallback tier {leg.tier} {tier.get('rule', '?')}{window} at {when}"
    if name == "composite":
        inner = rule.get("inner") or {}
        window = f" {inner['window']}s" if "window" in inner else ""
        return f"composite of {inner.get('rule', '?')}{window} at {when}"
    window = f" {rule['window']}s" if "window" in rule else ""
    return f"{name}{window} at {when}"


def reconciliation_cells(record: FixingRecord, legs: Sequence[str]) -> dict[str, list[str]]:
    """Per leg, the reconciliation's extra fixing columns (RECONCILIATION_EXTRA)."""
    out = {}
    for leg in record.legs:
        cells = leg_cells(leg)
        out[leg.leg] = [cells["tier"], cells["passed"], cells["sources"], cells["volume"]]
    return {leg: out.get(leg, ["", "", "", ""]) for leg in legs}
