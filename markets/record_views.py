"""The pages of a session's record, each one read: every trade and every event a page at a time, a
settled session's results, and a person's portfolio across sessions. Thin like markets.views."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from markets import selectors
from markets.selectors import export
from markets.views import refusals_shown


@login_required
@require_GET
@refusals_shown
def results(request: HttpRequest, session_id: str) -> HttpResponse:
    """A settled session's results, for a class on a projector or on paper: rank, name, payout, P&L and
    the initial allocation's value (`selectors.results`); before the settlement a page saying so (409)."""
    session = selectors.session_for(session_id, request.user)
    results = selectors.session_results(session)
    context = {
        "session": session,
        "results": results,
        "totals": results.totals(),
        "can_download": "payouts" in export.downloadable(session, request.user),
    }
    return render(request, "markets/results.html", context)


HISTORY_ROWS = 100


@login_required
@require_GET
@refusals_shown
def history(request: HttpRequest, session_id: str, kind: str) -> HttpResponse:
    """Every trade (`kind` "trades") or event ("log") of a session, newest first, a page at a time: the
    floor shows the newest 25 of each, and links here for the rest. `?before=` is the id (or seq) the
    next page starts below."""
    session = selectors.session_for(session_id, request.user)
    raw = request.GET.get("before", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        return render(
            request,
            "markets/refused.html",
            {"title": "Not a page", "message": "before= must be a whole number (the id the next page starts below)."},
            status=400,
        )
    before = int(raw) if raw else None
    if kind == "trades":
        rows = selectors.blotter(session, HISTORY_ROWS + 1, before)
        total = session.trades.count()
    else:
        rows = selectors.event_log(session, HISTORY_ROWS + 1, before)
        total = session.version  # its stream's events, one version each
    more, rows = len(rows) > HISTORY_ROWS, rows[:HISTORY_ROWS]
    after = (rows[-1].id if kind == "trades" else rows[-1].seq) if more else None
    context = {"session": session, "kind": kind, "rows": rows, "total": total, "before": before, "after": after}
    return render(request, "markets/history.html", context)


@login_required
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "markets/portfolio.html", {"rows": selectors.portfolio(request.user)})
