"""The floor's panels, in one registry: which `{% partialdef %}` of templates/markets/floor.html each is,
and which changes make it stale. The page renders them all; a push renders only those a batch changed,
and of the log, the blotter, the holdings and the RFQ board only the rows it changed (`Delta`).

A test holds this registry against the template: every panel here is a partial there that can be sent
out of band, and the page shows each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FLOOR = "markets/floor.html"

# Shared panels (the same for every viewer), in page order. The RFQ board is per viewer: `BOARD`; so is a
# batch session's order entry with the holder's own orders, reservations and fills: `ORDERS`. The batch
# panels (`cut`: the countdown to the next cut; `batch`: the last batch and the history) are shared.
PANELS = ("status", "fixing", "settlement", "legs", "batch", "chart", "holdings", "blotter", "cut", "pool", "events")
BOARD = "board"
ORDERS = "orders"

QUOTING = frozenset({"RFQRequested", "QuoteProvided", "QuoteWithdrawn", "QuotesExpired", "RFQCancelled"})
ORDERING = frozenset({"OrderPlaced", "OrderCancelled"})
TICK = "tick"

# What each kind of change makes stale (the status line carries the seq and the time, so it always goes).
# Any event not named here (a join, the opening, trading closing, the settlement) changes the whole floor.
_STALE: dict[str, frozenset[str]] = {
    **dict.fromkeys(QUOTING, frozenset({"status", "events", BOARD})),
    # An order changes its owner's panel only (sealed: the log's row says no more than that it exists).
    **dict.fromkeys(ORDERING, frozenset({"status", "events", ORDERS})),
    # A trade's mark on the price chart comes with the next tick's chart (the oracle's pace, a second or
    # so): redrawing the whole chart for every trade was the largest part of a trade's push. In a session
    # with batch auctions too, the two parties' available quantities moved (their `ORDERS`).
    "TradeExecuted": frozenset({"status", "holdings", "blotter", "pool", "events", BOARD, ORDERS}),
    # The fixing's progress moves with a tick only while its window runs: `render.render_panels` leaves the
    # panel out of a tick's push otherwise (`selectors.fixings.FixingPanel.live`), a `last` rule always.
    TICK: frozenset({"status", "fixing", "legs", "chart", "holdings", "pool"}),
    # A corporate action scheduled changes only the banner in the status line (and adds a row to the log);
    # applied (CorporateActionApplied, not named here) it moves q, every holding, the prices, the board and
    # the orders on its leg: the whole floor, once per action.
    "CorporateActionScheduled": frozenset({"status", "events"}),
}
# A cut (BatchCleared) moves holdings, every order of its book and both batch panels: the whole floor.
EVERYTHING = frozenset({*PANELS, BOARD, ORDERS})


def stale(changes: Iterable[str]) -> frozenset[str]:
    """The panels (and the board) a batch of changes (event types, or TICK) makes stale."""
    result: frozenset[str] = frozenset()
    for change in changes:
        result |= _STALE.get(change, EVERYTHING)
    return result


def shared(panels: Iterable[str]) -> list[str]:
    """The shared panels among `panels`, in page order."""
    wanted = set(panels)
    return [name for name in PANELS if name in wanted]


# Quoting and trading change the floor row by row: a push then carries the log's and the blotter's new
# rows, the holdings rows of those who traded and the RFQs touched, not the whole panels (a trade's push
# to a 21-participant floor: about 4 KB instead of 28 KB, and a few row renderings instead of 80 rows).
ROWS = frozenset({"events", "blotter", "holdings"})
_BY_ROW = QUOTING | ORDERING | {"TradeExecuted", "CorporateActionScheduled"}


@dataclass(frozen=True)
class Delta:
    """What a batch of one session's consecutive events changed, row by row. It applies to a floor that
    shows the stream up to `after` (the version before the batch's first event) and brings it to
    `version`; a floor that stands elsewhere is sent the whole floor instead."""

    after: int
    version: int
    panels: frozenset[str]  # as `stale` says; of ROWS and the board only rows go
    trades: tuple[int, ...]  # trade ids, newest first (the blotter's new rows)
    users: frozenset[int]  # user ids whose holdings moved (their holdings rows)
    rfqs: tuple[int, ...]  # RFQs touched, newest first (their rows on the board, or their removal)
    new_rfqs: frozenset[int]  # requested in this batch: added to the board, not replaced
    expired_quotes: tuple[int, ...]  # QuotesExpired names quotes: their RFQs are looked up
    owners: frozenset[int] = frozenset()  # user ids whose own order panel changed (their orders, a trade)


def delta(events: Iterable[Mapping[str, Any]]) -> Delta | None:
    """The `Delta` of a batch of one session's events (their JSON shape: type, version, seq, payload), or
    None when one of them changes more than rows (a join, the opening, a pause, t2, the settlement) or
    the versions do not follow each other: then the stale panels go whole."""
    events = list(events)
    if not events or any(e["type"] not in _BY_ROW for e in events):
        return None
    versions = [e["version"] for e in events]
    if versions != list(range(versions[0], versions[0] + len(versions))):
        return None
    trades: list[int] = []
    users: set[int] = set()
    rfqs: dict[int, None] = {}
    expired: list[int] = []
    owners: set[int] = set()
    for e in reversed(events):
        data = e["payload"]
        if e["type"] == "TradeExecuted":
            trades.append(data["trade_id"])
            users |= {data["taker_id"], data["maker_id"]}
        if e["type"] in ORDERING:
            if "user_id" not in data:  # a sealed copy names no owner: the whole floor goes instead
                return None
            owners.add(data["user_id"])
        elif e["type"] == "QuotesExpired":
            expired.extend(data["quote_ids"])
        elif "rfq_id" in data:
            rfqs[data["rfq_id"]] = None
    new = frozenset(e["payload"]["rfq_id"] for e in events if e["type"] == "RFQRequested")
    return Delta(
        after=versions[0] - 1,
        version=versions[-1],
        panels=stale(e["type"] for e in events),
        trades=tuple(trades),
        users=frozenset(users),
        rfqs=tuple(rfqs),
        new_rfqs=new,
        expired_quotes=tuple(expired),
        owners=frozenset(owners | users),
    )
