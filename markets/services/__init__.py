"""The market's commands: one function per user intent, one database transaction each.

Every command: check permissions -> validate with the pure domain -> append event(s) to the ledger ->
apply them to the projection with the same code replay uses -> check the invariants -> commit.
Any failure raises a DomainError subclass and rolls everything back: nothing is written. Views, the API,
the admin and the management commands all call these functions; the permission checks live in them.

    command.py     the envelope (lock, clock, emit, invariants, retry) and the shared rules
    sessions.py    create, join, open, cancel; pause and resume trading
    trading.py     RFQs, quotes, withdrawals, cancels, accepts
    settlement.py  settle at prices or at the fixing
    orders.py      batch auctions' limit orders: place (reserving what they may give), cancel
    batches.py     batch auctions' cut: the organiser's "clear now", the scheduler's due batches
    margin.py      bounded shorting: the margin rule inside the commands, liquidation, deleveraging
    scheduler.py   what the clock makes due (run_due)
"""

from markets.services.actions import actions_due, apply_due_actions, schedule_action
from markets.services.batches import clear_batch, clear_due_batches
from markets.services.command import check_invariants, tolerance_base_units
from markets.services.margin import liquidate, liquidate_due_sessions
from markets.services.orders import cancel_order, place_order
from markets.services.scheduler import (
    close_due_sessions,
    expire_due_quotes,
    open_due_sessions,
    run_due,
    settle_due_sessions,
)
from markets.services.sessions import (
    cancel_session,
    create_session,
    join_session,
    open_session,
    pause_trading,
    resume_trading,
)
from markets.services.settlement import settle_session
from markets.services.trading import (
    DEFAULT_QUOTE_TTL,
    MAX_QUOTE_TTL,
    accept_quote,
    cancel_rfq,
    provide_quote,
    request_rfq,
    withdraw_quote,
)

__all__ = [
    "DEFAULT_QUOTE_TTL",
    "MAX_QUOTE_TTL",
    "accept_quote",
    "actions_due",
    "apply_due_actions",
    "cancel_order",
    "cancel_rfq",
    "cancel_session",
    "check_invariants",
    "clear_batch",
    "clear_due_batches",
    "close_due_sessions",
    "create_session",
    "expire_due_quotes",
    "join_session",
    "liquidate",
    "liquidate_due_sessions",
    "open_due_sessions",
    "open_session",
    "pause_trading",
    "place_order",
    "provide_quote",
    "request_rfq",
    "resume_trading",
    "run_due",
    "schedule_action",
    "settle_due_sessions",
    "settle_session",
    "tolerance_base_units",
    "withdraw_quote",
]
