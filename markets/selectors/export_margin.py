"""Bounded shorting in the export: `margin.csv`, each holder's W and requirement after every event that
changed them (the allocation, each trade, each batch that traded, each liquidation and deleveraging),
judged as the commands judge (`selectors.margin.judge`) at the oracle's latest prices at or before the
event's time (`selectors.prices.prices_at`; a liquidation and a deleveraging at the prices they record);
and the settlement haircut line by line for `reconciliation.csv` (gross x_i.S, the haircut, what was paid,
the deficit and the factor), recomputed from the log by the settlement's own rule (`liquidation.haircut`).

A session without shorting has no margin.csv (409 `not_shorting`) and its reconciliation has no haircut
lines: its export is what it was."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.chain import format_at
from markets import domain
from markets.domain import liquidation
from markets.domain import margin as rules
from markets.selectors.margin import judge
from markets.selectors.prices import prices_at

if TYPE_CHECKING:
    from markets.selectors.export import Replay, SessionExport

# Events that name their own prices and ticks: the liquidation's judgement, not a later reading.
PRICED = frozenset({"PositionLiquidated", "AutoDeleveraged"})
MARGIN_EVENTS = frozenset({"PositionLiquidated"})  # changes the status without moving holdings


def margin_header(legs: list[str]) -> list[str]:
    return ["seq", "at", "event", "user_id", "username", "name", "W", "requirement", "excess", "status",
            "binding_leg", *(f"price:{leg}" for leg in legs), *(f"tick:{leg}" for leg in legs)]  # fmt: skip


def margin_rows(export: SessionExport, replay: Replay) -> Iterator[list[str]]:
    """margin.csv: after each event that moved holdings (or liquidated someone), a row for every holder
    it touched: W, the requirement, the excess, the status, the binding leg, the prices and their ticks."""
    session, legs = export.session, export.legs
    settings = session.margin
    liquidated: set[int] = set()
    for event in replay.steps(extra=MARGIN_EVENTS):
        d = event.data
        if event.type == "PositionLiquidated":
            liquidated.add(d["user_id"])
        if event.type in PRICED:
            prices: list[int | None] = [d["prices"].get(leg) for leg in legs]
            ticks: Mapping[str, Any] = d.get("ticks", {})
        else:
            prices, ticks = prices_at(session, event.at)
        at = format_at(event.at)
        shown = [domain.price_str(p) if p is not None else "" for p in prices]
        tick_ids = [str(ticks[leg]) if leg in ticks else "" for leg in legs]
        for user in export.order(replay.touched):
            judged, status = judge(replay.holdings[user], prices, settings, legs, liquidated=user in liquidated)
            figures = [rules.money_text(judged.w), rules.money_text(judged.requirement),
                       rules.money_text(judged.excess)] if judged else ["", "", ""]  # fmt: skip
            binding = legs[judged.binding] if judged and judged.binding is not None else ""
            yield [str(event.seq), at, event.type, str(user), export.names.get(user, ""), export.shown.get(user, ""),
                   *figures, status, binding, *shown, *tick_ids]  # fmt: skip


# ---------------------------------------------------------------- the settlement haircut


def settlement_cut(gross: Mapping[int, int], total: int) -> liquidation.Haircut | None:
    """The haircut the settlement's rule gives these gross payouts (None: no payout below 0, none)."""
    cut = liquidation.haircut(gross, total)
    return cut if cut.deficit else None


def participant_lines(
    user: int, name: list[str], cut: liquidation.Haircut, recorded: Mapping[str, Any]
) -> Iterator[list[str]]:
    """A holder's gross payout (x_i.S, against the recorded gross) and its haircut (paid - gross: below 0
    where the deficit was taken from it, above 0 where a negative payout was raised to 0)."""
    gross = domain.money_str(cut.gross[user])
    kept = recorded.get("gross_by_id", {}).get(str(user), "")
    yield ["gross", str(user), *name, "", "", "", "", "", "", "", gross, kept, _equal(gross, kept)]
    yield ["haircut", str(user), *name, "", "", "", "", "", "", "",
           domain.money_str(cut.paid[user] - cut.gross[user]), "", ""]  # fmt: skip


def waterfall_lines(cut: liquidation.Haircut, recorded: Mapping[str, Any]) -> Iterator[list[str]]:
    """The deficit (the sum of the negative gross payouts) and the factor q.S / (q.S + D) applied to the
    positive ones, each against what the settlement recorded."""
    deficit = domain.money_str(cut.deficit)
    yield ["deficit", "", "", "", "", "", "", "", "", "", "", deficit, recorded.get("deficit", ""),
           _equal(deficit, recorded.get("deficit", ""))]  # fmt: skip
    factor = f"{cut.factor.numerator}/{cut.factor.denominator}"
    yield ["factor", "", "", "", "", "", "", "", "", "", "", factor, recorded.get("factor", ""),
           "true" if factor == recorded.get("factor") else "false"]  # fmt: skip


def _equal(a: str, b: str) -> str:
    """Two exact money strings compared as numbers (reconciliation's own rule)."""
    try:
        return "true" if Decimal(a) == Decimal(b) else "false"
    except ArithmeticError:
        return "false"
