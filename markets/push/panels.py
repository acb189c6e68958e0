"""The floor's panels, in one registry: which `{% partialdef %}` of templates/markets/floor.html each is,
and which changes make it stale. The page renders them all; a push renders only those a batch changed.

A test holds this registry against the template: every panel here is a partial there that can be sent
out of band, and the page shows each of them.
"""

from __future__ import annotations

from collections.abc import Iterable

FLOOR = "markets/floor.html"

# Shared panels (the same for every viewer), in page order. The RFQ board is per viewer: `BOARD`.
PANELS = ("status", "settlement", "legs", "chart", "holdings", "blotter", "pool", "events")
BOARD = "board"

QUOTING = frozenset({"RFQRequested", "QuoteProvided", "QuoteWithdrawn", "QuotesExpired", "RFQCancelled"})
TICK = "tick"

# What each kind of change makes stale (the status line carries the seq and the time, so it always goes).
# Any event not named here (a join, the opening, trading closing, the settlement) changes the whole floor.
_STALE: dict[str, frozenset[str]] = {
    **dict.fromkeys(QUOTING, frozenset({"status", "events", BOARD})),
    "TradeExecuted": frozenset({"status", "chart", "holdings", "blotter", "pool", "events", BOARD}),
    TICK: frozenset({"status", "legs", "chart", "holdings", "pool"}),
}
EVERYTHING = frozenset({*PANELS, BOARD})


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
