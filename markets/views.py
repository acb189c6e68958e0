"""Thin views: parse the request, call one service or selector, render a page or an htmx partial.

A service error (DomainError) is shown inline next to the form that caused it, never as a 500.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from markets import access, demo, selectors, services, sql
from markets.errors import DomainError, http_status
from markets.forms import SessionCreateForm
from markets.models import RFQ, Quote, Session
from markets.push import snapshot
from markets.push.render import render_board, render_mine, render_orders
from markets.selectors import margin_floor
from markets.selectors.invites import joined_counts
from oracle import units

FLOOR = "markets/floor.html"


def health(request: HttpRequest) -> JsonResponse:
    sql.ping()
    return JsonResponse({"status": "ok"})


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    form = SessionCreateForm(request.POST or None)
    can_create = request.user.has_perm("markets.add_session")
    if request.method == "POST":
        if form.is_valid():
            try:
                session = services.create_session(request.user, **form.service_kwargs())
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                return _redirect_htmx(request, "markets:floor", session.id)
        status = 200 if request.htmx else 422
        return render(request, "markets/session_list.html#create_form", {"form": form}, status=status)
    context = {"rows": selectors.session_rows(request.user), "form": form, "can_create": can_create}
    return render(request, "markets/session_list.html", context)


def _redirect_htmx(request: HttpRequest, name: str, *args: Any) -> HttpResponse:
    url = reverse(name, args=args)
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _viewable(request: HttpRequest, session: Session) -> Session:
    """The session, if this viewer may see it (`markets.access`, the rule the API and sockets ask too)."""
    access.require_view(session, request.user)
    return session


def refusals_shown(view):
    """A refusal raised before a view reaches its form (e.g. a session this user may not see) is a page
    saying so, with its status, never a 500."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            title = {"forbidden": "Not visible to you", "unauthenticated": "Sign in first", "not_found": "Not found"}
            context = {"title": title.get(exc.kind, "Refused"), "message": exc.message}
            return render(request, "markets/refused.html", context, status=http_status(exc))

    return wrapper


@login_required
@require_GET
@refusals_shown
def floor(request: HttpRequest, session_id: str) -> HttpResponse:
    """The whole floor: its shared panels as rendered once at this position for every viewer
    (`markets.push.snapshot`), the board as this viewer stands to it, and their own controls."""
    return _floor_page(request, selectors.session_for(session_id, request.user))


def _floor_page(request: HttpRequest, session: Session, **extra: Any) -> HttpResponse:
    panels = snapshot.floor(session, oob=False)
    viewer = selectors.viewer_context(session, request.user)
    context = panels["context"] | viewer | {"shared": panels["parts"], "board_html": render_board(panels, viewer["me"])}
    mine = {
        "mine_html": render_mine(panels, viewer["me"]) or "",
        "orders_html": render_orders(panels, viewer["me"]) or "",
    }
    return render(request, FLOOR, context | mine | extra)


def _viewer(request: HttpRequest, session: Session) -> dict[str, Any]:
    """The session as it is now, who this viewer is in it, and where it stands: what a partial answer needs."""
    session = Session.objects.get(id=session.id)
    return selectors.viewer_context(session, request.user) | selectors.phase_context(session) | {"session": session}


def _board_response(
    request: HttpRequest,
    session: Session,
    *,
    error: str = "",
    error_key: str = "",
    notice: str = "",
    notice_key: str = "",
) -> HttpResponse:
    """The RFQ board for this viewer, with an inline error next to the form that caused it, or a notice of
    what the action did where its RFQ was (floor.js keeps both there while pushes redraw the board)."""
    if not request.htmx:
        return said_on_the_floor(request, session, error=error, notice=notice)
    context = _viewer(request, session)
    board = selectors.board_data(context["session"])
    margin_floor.board_previews(context["session"], board, None)  # a shorting session: what accepting would do
    if error and error_key not in _shown_keys(context, board):
        error_key = "board"  # its row is gone (filled, withdrawn, expired) or its form not shown: say it on top
    context |= {
        "board": board,
        "error": error,
        "error_key": error_key,
        "notice": notice,
        "notice_key": notice_key,
        # After a refusal the form keeps what was typed, so it can be corrected rather than retyped.
        "typed": request.POST if error else {},
    }
    return render(request, f"{FLOOR}#board", context)


def said_on_the_floor(request: HttpRequest, session: Session, *, error: str = "", notice: str = "") -> HttpResponse:
    """A form posted without htmx: what the action did (or why it was refused) as a message on the floor,
    which the browser is sent back to."""
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect("markets:floor", session.id)


def _shown_keys(context: dict[str, Any], board: list[dict[str, Any]]) -> set[str]:
    """The places on this viewer's board an inline error can stand: the RFQ form, each RFQ, each quote."""
    me = context.get("me")
    trading = context.get("phase") == "open" and not context["session"].paused_at
    keys = {"rfq"} if me and me.role != "organiser" and trading else set()
    for r in board:
        keys.add(r["key"])
        keys.update(q["key"] for q in r["quotes"])
    return keys


def _act(request: HttpRequest, session: Session, error_key: str, fn, *args: Any, **kwargs: Any) -> HttpResponse:
    try:
        fn(request.user, *args, **kwargs)
    except DomainError as exc:
        return _board_response(request, session, error=margin_floor.refusal(exc), error_key=error_key)
    return _board_response(request, session)


def _typed(request: HttpRequest, field: str, what: str) -> object:
    """A number typed in a floor form, a decimal comma read as a point (`units.read_form_decimal`: `1,5`
    is 1.5); an ambiguous comma (`1,000`, `1.000,5`) is refused as the services refuse a bad number."""
    try:
        return units.read_form_decimal(request.POST.get(field, ""), what)
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_number") from None


@login_required
@require_POST
@refusals_shown
def rfq_create(request: HttpRequest, session_id: str) -> HttpResponse:
    session = selectors.session_for(session_id, request.user)
    data = request.POST
    try:
        quantity = _typed(request, "quantity", "Quantity")
    except DomainError as exc:
        return _board_response(request, session, error=exc.message, error_key="rfq")
    return _act(
        request,
        session,
        "rfq",
        services.request_rfq,
        session.id,
        data.get("give_leg", ""),
        data.get("get_leg", ""),
        quantity,
    )


def _rfq_session(request: HttpRequest, rfq_id: int) -> Session:
    rfq = RFQ.objects.filter(id=rfq_id).select_related("session").first()
    if rfq is None:
        raise Http404("No such RFQ")
    return _viewable(request, rfq.session)


def _quote_session(request: HttpRequest, quote_id: int) -> Session:
    quote = Quote.objects.filter(id=quote_id).select_related("rfq__session").first()
    if quote is None:
        raise Http404("No such quote")
    return _viewable(request, quote.rfq.session)


@login_required
@require_POST
@refusals_shown
def quote_create(request: HttpRequest, rfq_id: int) -> HttpResponse:
    session = _rfq_session(request, rfq_id)
    try:
        rate = _typed(request, "rate", "Rate")
    except DomainError as exc:
        return _board_response(request, session, error=exc.message, error_key=f"rfq-{rfq_id}")
    # The lifetime is read by the service's one reader of whole numbers (`units.read_whole`), never int().
    return _act(request, session, f"rfq-{rfq_id}", services.provide_quote, rfq_id, rate, request.POST.get("ttl", "60"))


@login_required
@require_POST
@refusals_shown
def rfq_cancel(request: HttpRequest, rfq_id: int) -> HttpResponse:
    return _act(request, _rfq_session(request, rfq_id), f"rfq-{rfq_id}", services.cancel_rfq, rfq_id)


@login_required
@require_POST
@refusals_shown
def quote_accept(request: HttpRequest, quote_id: int) -> HttpResponse:
    session = _quote_session(request, quote_id)
    try:
        trade = services.accept_quote(request.user, quote_id)
    except DomainError as exc:
        return _board_response(request, session, error=margin_floor.refusal(exc), error_key=f"quote-{quote_id}")
    return _board_response(request, session, notice=selectors.traded_notice(trade), notice_key=f"rfq-{trade.rfq_id}")


@login_required
@require_POST
@refusals_shown
def quote_withdraw(request: HttpRequest, quote_id: int) -> HttpResponse:
    return _act(request, _quote_session(request, quote_id), f"quote-{quote_id}", services.withdraw_quote, quote_id)


def _controls_response(
    request: HttpRequest, session: Session, *, error: str = "", preview=None, confirm_open=None
) -> HttpResponse:
    context = _viewer(request, session)
    context |= {
        "control_error": error,
        "preview": preview,
        "confirm_open": confirm_open,
    }
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("markets:floor", session.id)
    return render(request, f"{FLOOR}#controls", context)


@login_required
@require_POST
@refusals_shown
def session_join(request: HttpRequest, session_id: str) -> HttpResponse:
    session = selectors.session_for(session_id, request.user)
    try:
        services.join_session(request.user, session.id, request.POST.get("role", ""))
    except DomainError as exc:
        return _controls_response(request, session, error=exc.message)
    return _redirect_htmx(request, "markets:floor", session.id)


def open_confirmation(session: Session, posted: str | None = None) -> dict[str, Any]:
    """What "Open session & allocate" asks first: among how many the pool is shared out, and whether
    that count moved since the organiser was asked (`posted`: the count they confirmed)."""
    counts = joined_counts(session)
    return counts | {"changed": posted is not None and posted != str(counts["holders"])}


@login_required
@require_http_methods(["GET", "POST"])
@refusals_shown
def session_open(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: say how many joined, to confirm (the floor's controls; the whole floor without scripts).
    POST (the confirm): allocate and open, unless the count moved since (then ask again)."""
    session = selectors.session_for(session_id, request.user)
    confirm = open_confirmation(session, request.POST.get("holders") if request.method == "POST" else None)
    if request.method == "GET" or confirm["changed"]:
        if not request.htmx:
            return _floor_page(request, session, confirm_open=confirm)
        return _controls_response(request, session, confirm_open=confirm)
    try:
        services.open_session(request.user, session.id)
    except DomainError as exc:
        return _controls_response(request, session, error=exc.message)
    return _redirect_htmx(request, "markets:floor", session.id)


def _pause_or_resume(request: HttpRequest, session_id: str, command) -> HttpResponse:
    """The organiser's floor pauses or resumes in place: the change comes back to every floor, this one
    included, as the push of its event; a refusal is said next to the button (floor.js), with its status."""
    session = selectors.session_for(session_id, request.user)
    try:
        command(request.user, session.id)
    except DomainError as exc:
        context = {"title": "Refused", "message": exc.message}
        return render(request, "markets/refused.html", context, status=http_status(exc))
    if not request.htmx:
        return redirect("markets:floor", session.id)
    return HttpResponse(status=204)


@login_required
@require_POST
@refusals_shown
def session_pause(request: HttpRequest, session_id: str) -> HttpResponse:
    return _pause_or_resume(request, session_id, services.pause_trading)


@login_required
@require_POST
@refusals_shown
def session_resume(request: HttpRequest, session_id: str) -> HttpResponse:
    return _pause_or_resume(request, session_id, services.resume_trading)


@login_required
@refusals_shown
def session_settle(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: show the fixing prices to confirm. POST: settle at exactly that fixing (its instant is posted back)."""
    session = selectors.session_for(session_id, request.user)
    if request.method == "GET":
        return _controls_response(request, session, preview=selectors.fixing_preview(session))
    if request.method != "POST":
        return HttpResponse(status=405)
    fixing_at = None
    if request.POST.get("fixing_at"):
        try:
            fixing_at = dt.datetime.fromisoformat(request.POST["fixing_at"])
        except ValueError:
            return _controls_response(request, session, error="The fixing time is not a valid date")
    try:
        services.settle_session(request.user, session.id, fixing_at=fixing_at)
    except DomainError as exc:
        return _controls_response(request, session, error=exc.message)
    return _redirect_htmx(request, "markets:floor", session.id)


@require_POST
def demo_switch(request: HttpRequest) -> HttpResponse:
    """Demo mode only: sign in as one of the demo's own participants in one click (as classroom market
    tools do). Never a staff or superuser account; only from this machine unless opened to the network."""
    if not settings.DEMO_MODE:
        raise Http404("Demo mode is off")
    if not demo.switch_allowed(request):
        context = {
            "title": "Not from here",
            "message": "The demo switcher answers only on the machine that runs the demo "
            "(DEMO_OPEN_TO_NETWORK=true opens it to the network). Sign in with a username and password.",
        }
        return render(request, "markets/refused.html", context, status=403)
    user = demo.accounts().filter(username=request.POST.get("username", "")).first()
    if user is None:
        context = {"title": "Not a demo account", "message": "Demo mode signs in as the demo's participants only."}
        return render(request, "markets/refused.html", context, status=403)
    login(request, user, backend=settings.SIGN_IN_BACKEND)
    return redirect(_next_page(request.POST.get("next", "")))


def _next_page(target: str) -> str:
    """Where to go after signing in: the page asked for, or, from the sign-in page, the page it was
    asked to go on to (its own `next`); never another site."""
    parts = urlsplit(target)
    if parts.path == reverse("login"):
        target = parse_qs(parts.query).get("next", ["/"])[0]
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def signin_locked_out(request: HttpRequest, credentials: dict | None = None, *args: Any, **kwargs: Any):
    """django-axes' answer while a username and address are locked out: the sign-in page says why."""
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    context = {
        "locked": f"Too many wrong passwords for this account from here: try again in {minutes} minutes.",
        "form": None,
        "next": request.POST.get("next", ""),
    }
    return render(request, "registration/login.html", context, status=429)
