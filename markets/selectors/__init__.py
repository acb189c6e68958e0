"""Every read shaped for the pages, the API, the pushes and the exports. No writes here.

common.py    display numbers, `session_for` (the one "this session, if you may see it")
prices.py    a session's ticks in one statement: latest prices, the window the price cards and chart draw
sessions.py  where sessions stand: the list, the phase and its words, what the oracle prices
floor.py     the floor's panels (legs, holdings, pool and invariants, board, blotter, log), portfolio
events.py    the one JSON shape of an event, and the log's one-line summaries
api.py       the JSON API's answers
results.py   a settled session's results (payout, P&L against the initial allocation, rank): page, API, CSV
"""

from markets.selectors.common import latest_prices, money_dec, price_vector, q_dec, session_for
from markets.selectors.events import event_json, event_log, event_row, summarize, traded_notice
from markets.selectors.fixings import fixing_preview
from markets.selectors.floor import (
    FLOOR_PARTS,
    blotter,
    board_data,
    floor_context,
    floor_position,
    holdings_and_pool,
    last_tick,
    portfolio,
    position_text,
)
from markets.selectors.results import session_results
from markets.selectors.sessions import (
    PHASE_LABELS,
    phase_context,
    priced_sessions,
    session_rows,
    status_note,
    viewer_context,
)

__all__ = [
    "FLOOR_PARTS",
    "PHASE_LABELS",
    "blotter",
    "board_data",
    "event_json",
    "event_log",
    "event_row",
    "fixing_preview",
    "floor_context",
    "floor_position",
    "holdings_and_pool",
    "last_tick",
    "latest_prices",
    "money_dec",
    "phase_context",
    "portfolio",
    "position_text",
    "price_vector",
    "priced_sessions",
    "q_dec",
    "session_for",
    "session_results",
    "session_rows",
    "status_note",
    "summarize",
    "traded_notice",
    "viewer_context",
]
