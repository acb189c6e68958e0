"""Bounded shorting on the organiser's monitor: everyone's margin at the latest prices, as
`markets.selectors.margin.margin_rows` reads it (the API's and the export's figures), by user id."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from markets.models import Session
from markets.selectors.margin import MarginRow, margin_rows

# Worst first when the column is sorted (numbers sort largest first): liquidated, reduce-only, ok.
STATUS_RANK = {"liquidated": 3, "reduce_only": 2, "ok": 1}
STATUS_LABELS = {"ok": "OK", "reduce_only": "Reduce-only", "liquidated": "Liquidated"}


@dataclass(frozen=True)
class MonitorMargin:
    """One holder's margin as a monitor row shows it."""

    row: MarginRow

    @property
    def status(self) -> str:
        return self.row.status

    @property
    def label(self) -> str:
        return STATUS_LABELS.get(self.row.status, self.row.status)

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.row.status, 0)

    @property
    def w(self) -> str | None:
        return self.row.w

    @property
    def requirement(self) -> str | None:
        return self.row.requirement

    @property
    def shorts(self) -> list[tuple[str, Decimal, str]]:
        """(leg, units short, share of the limit used as a whole percent) per leg short."""
        return [
            (
                leg,
                Decimal(qty),
                f"{Decimal(self.row.short_used[leg]) * 100:.0f}%" if self.row.short_used[leg] != "-" else "-",
            )
            for leg, qty in self.row.short.items()
        ]

    @property
    def most_used(self) -> str:
        """The largest share of the limit used (sorts the short column)."""
        used = [Decimal(u) for u in self.row.short_used.values() if u != "-"]
        return str(max(used)) if used else "0"


def margin_by_user(session: Session) -> dict[int, MonitorMargin]:
    """Each holder's margin by user id (none for a session without shorting: no read)."""
    if not session.shorting:
        return {}
    rows, _ = margin_rows(session)
    return {row.user_id: MonitorMargin(row) for row in rows}


def margin_totals(margins: dict[int, MonitorMargin]) -> dict[str, Any]:
    """How many are short, reduce-only and liquidated: the monitor's totals."""
    return {
        "short": sum(1 for m in margins.values() if m.row.short),
        "reduce_only": sum(1 for m in margins.values() if m.status == "reduce_only"),
        "liquidated": sum(1 for m in margins.values() if m.status == "liquidated"),
    }
