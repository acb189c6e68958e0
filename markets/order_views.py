"""The floor's side of batch auctions, thin like markets.views: place and cancel a limit order, the
organiser's "Clear now", and every batch of a session a page at a time.

What an action did, or why it was refused, comes back in the panel it was pressed in (the order form, the
order's row, the cut's button), marked `data-kept` so that static/js/floor.js keeps it there while pushes
redraw the panel; a refusal writes nothing. Without scripts, the floor is shown again with the message.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from markets import domain, selectors, services
from markets.errors import DomainError
from markets.models import Order, Session
from markets.selectors import batch_floor, margin_floor
from markets.views import FLOOR, _typed, refusals_shown, said_on_the_floor
from oracle import units


def _lifetime(posted: QueryDict) -> dict[str, Any]:
    """The order form's lifetime: the next batch only, N batches (`good_for`), or until cancelled."""
    life = posted.get("life", "once")
    if life == "once":
        return {}
    if life == "gtc":
        return {"gtc": True}
    if life == "batches":
        good_for = posted.get("good_for", "").strip(" \t")
        if not good_for:
            raise DomainError("Say for how many batches the order lives (N, 1 to 1000)", "invalid_lifetime")
        return {"good_for": good_for}
    raise DomainError(
        "Choose how long the order lives: the next batch, N batches or until cancelled", "invalid_lifetime"
    )


def _orders_response(
    request: HttpRequest, session: Session, *, error: str = "", error_key: object = "", notice: str = ""
) -> HttpResponse:
    """This holder's order panel as it stands now, with what their action did or why it was refused."""
    if not request.htmx:
        return said_on_the_floor(request, session, error=error, notice=notice)
    session = Session.objects.get(id=session.id)
    me = selectors.viewer_context(session, request.user)["me"]
    if me is None or me.role not in domain.HOLDER_ROLES:  # no order panel on their floor: said where they pressed
        context = {"title": "Refused", "message": error or "Only traders and makers place orders"}
        return render(request, "markets/refused.html", context, status=403)
    mine = batch_floor.holders_part(session, [me.user_id]).get(me.user_id) or batch_floor.Mine()
    if error and isinstance(error_key, int) and error_key not in {o.id for o in mine.orders}:
        error_key = "orders"  # its row is not (or no longer) among theirs: said on top of the panel
    context = selectors.phase_context(session) | {
        "session": session,
        "me": me,
        "my": mine,
        "error": error,
        "error_key": error_key,
        "notice": notice,
        "oob": True,  # swapped where the panel stands now: a push may have replaced it while this was asked
    }
    return render(request, f"{FLOOR}#orders", context)


@login_required
@require_POST
@refusals_shown
def order_place(request: HttpRequest, session_id: str) -> HttpResponse:
    """Give up to `quantity` of one leg for another at `limit_rate` or better (decimal commas read as
    points, as every floor form reads them), for the next batch, N batches or until cancelled."""
    session = selectors.session_for(session_id, request.user)
    data = request.POST
    try:
        quantity = _typed(request, "quantity", "Quantity")
        limit = _typed(request, "limit_rate", "The limit rate")
        order = services.place_order(
            request.user,
            session.id,
            data.get("give_leg", ""),
            data.get("get_leg", ""),
            quantity,
            limit,
            **_lifetime(data),
        )
    except DomainError as exc:
        return _orders_response(request, session, error=margin_floor.refusal(exc), error_key="order")
    return _orders_response(request, session, notice=batch_floor.placed_notice(order))


@login_required
@require_GET
@refusals_shown
def order_preview(request: HttpRequest, session_id: str) -> HttpResponse:
    """A shorting session's order form, as it is typed: what the order would do to my W if it filled whole
    at its limit, and whether placing it would be refused (the rule `place_order` applies). Nothing until
    the form names an amount, two legs and a limit."""
    session = selectors.session_for(session_id, request.user)
    me = selectors.viewer_context(session, request.user)["me"]
    data = request.GET
    context: dict[str, Any] = {"p": None, "session": session}
    if session.shorting and me is not None and me.role in domain.HOLDER_ROLES:
        try:
            qty = domain.parse_qty(units.read_form_decimal(data.get("quantity", ""), "Quantity"))
            limit = domain.parse_rate(units.read_form_decimal(data.get("limit_rate", ""), "The limit rate"))
            gi = domain.leg_index(session.legs, data.get("give_leg", ""))
            ge = domain.leg_index(session.legs, data.get("get_leg", ""))
        except (DomainError, units.InvalidNumber):
            pass  # not a whole order yet: the form says why when it is placed
        else:
            if gi != ge:
                context["p"] = margin_floor.order_preview(session, me.user_id, gi, ge, qty, limit)
    return render(request, f"{FLOOR}#order_preview", context)


@login_required
@require_POST
@refusals_shown
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    found = Order.objects.filter(id=order_id).values_list("session_id", flat=True).first()
    if found is None:
        raise Http404("No such order")
    session = selectors.session_for(found, request.user)
    try:
        order = services.cancel_order(request.user, order_id)
    except DomainError as exc:
        return _orders_response(request, session, error=exc.message, error_key=order_id)
    return _orders_response(request, session, notice=batch_floor.cancelled_notice(order))


def _cut_response(request: HttpRequest, session: Session, *, error: str = "", notice: str = "") -> HttpResponse:
    if not request.htmx:
        return said_on_the_floor(request, session, error=error, notice=notice)
    session = Session.objects.get(id=session.id)
    context = selectors.phase_context(session) | {
        "session": session,
        "cut": batch_floor.cut_context(session),
        "cut_error": error,
        "cut_notice": notice,
        "oob": True,  # as the order panel: the batch's push may have replaced the panel meanwhile
    }
    return render(request, f"{FLOOR}#cut", context)


@login_required
@require_POST
@refusals_shown
def batch_clear(request: HttpRequest, session_id: str) -> HttpResponse:
    """The organiser cuts the book now (`services.clear_batch`); every floor gets the batch by its push,
    and the organiser is told what it did next to the button."""
    session = selectors.session_for(session_id, request.user)
    try:
        cut = services.clear_batch(request.user, session.id)
    except DomainError as exc:
        return _cut_response(request, session, error=exc.message)
    return _cut_response(request, session, notice=batch_floor.cleared_notice(cut))


@login_required
@require_GET
@refusals_shown
def batches(request: HttpRequest, session_id: str) -> HttpResponse:
    """Every batch of a session, newest first, a page at a time (`?before=` the number the page starts
    below): the floor shows the newest ten."""
    session = selectors.session_for(session_id, request.user)
    raw = request.GET.get("before", "")
    if raw and not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        context = {
            "title": "Not a page",
            "message": "before= must be a whole number (the batch the page starts below).",
        }
        return render(request, "markets/refused.html", context, status=400)
    before = int(raw) if raw else None
    rows = batch_floor.batch_rows(session, batch_floor.PAGE_ROWS + 1, before)
    more, rows = len(rows) > batch_floor.PAGE_ROWS, rows[: batch_floor.PAGE_ROWS]
    context = {
        "session": session,
        "rows": rows,
        "before": before,
        "after": rows[-1].number if more else None,
    }
    return render(request, "markets/batches.html", context)
