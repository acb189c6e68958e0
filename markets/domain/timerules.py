"""The market's time rules as pure functions of the clock (no Django): where a session, an RFQ and a quote
stand at an instant, whatever the scheduler has recorded so far. The commands refuse by these rules, the
readers (floor, API, monitor, lists) show them, and the scheduler records what they made true. Read
through `markets.domain` (which re-exports them) or the models' `phase` and `status_at`.
"""

from __future__ import annotations

import datetime as dt


def session_phase(status: str, end_mode: str, t2: dt.datetime | None, now: dt.datetime) -> str:
    """A session's status as of `now`: trading in a timed session stops at t2 by itself (at t2 exactly,
    not a tick later), and a timed session not open by its t2 never will be (cancelled), whatever the
    scheduler has recorded so far."""
    if end_mode == "timed" and t2 is not None and now >= t2:
        if status == "open":
            return "closed"
        if status == "created":
            return "cancelled"
    return status


def unopened_reason(start_mode: str, t2: dt.datetime) -> str:
    """Why a timed session that never opened is cancelled: the scheduler records it, readers say it before."""
    if start_mode == "scheduled":
        return f"t2 ({when(t2)}) passed before the session could open (nothing ran at t1 to open it)"
    return f"t2 ({when(t2)}) passed before the organiser opened the session"


def quote_status(status: str, expires_at: dt.datetime, now: dt.datetime, ends: dt.datetime | None = None) -> str:
    """A quote's status as of `now`: a live quote at or past its expiry is expired; one still live when
    trading ended (`ends`: a timed session's t2) lapsed then, unless it had expired by that instant."""
    if status != "live":
        return status
    if ends is not None and now >= ends:
        return "expired" if expires_at <= ends else "lapsed"
    return "expired" if expires_at <= now else status


def rfq_status(status: str, now: dt.datetime, ends: dt.datetime | None = None) -> str:
    """An RFQ's status as of `now`: one still open when trading ended (`ends`) lapsed then."""
    if status == "open" and ends is not None and now >= ends:
        return "lapsed"
    return status


def when(at: dt.datetime) -> str:
    """An instant as the messages write it: UTC, with the fraction of a second when there is one."""
    utc = at.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f" if utc.microsecond else "%Y-%m-%d %H:%M:%S") + " UTC"
