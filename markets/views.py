"""Thin views: parse the request, call one service or selector, render a page or an htmx partial.

A service error (DomainError) is shown inline next to the form that caused it, never as a 500.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from markets import selectors, services
from markets.errors import DomainError
from markets.forms import SessionCreateForm
from markets.models import RFQ, Quote, Session

FLOOR = "markets/floor.html"


def health(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
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
    context = {"rows": selectors.session_rows(), "form": form, "can_create": can_create}
    return render(request, "markets/session_list.html", context)


def _redirect_htmx(request: HttpRequest, name: str, *args: Any) -> HttpResponse:
    from django.urls import reverse

    url = reverse(name, args=args)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _session_or_404(session_id: str) -> Session:
    try:
        return Session.objects.get(id=session_id)
    except Session.DoesNotExist:
        raise Http404(f"No session {session_id}") from None


@login_required
@require_GET
def floor(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(session_id)
    context = selectors.floor_context(session.id) | selectors.viewer_context(session, request.user)
    context["board"] = selectors.board_data(session)
    return render(request, FLOOR, context)


def _board_response(request: HttpRequest, session: Session, *, error: str = "", error_key: str = "") -> HttpResponse:
    """The RFQ board for this viewer, with an inline error next to the form that caused it."""
    session = Session.objects.get(id=session.id)
    context = (
        selectors.viewer_context(session, request.user)
        | selectors.phase_context(session)
        | {
            "session": session,
            "board": selectors.board_data(session),
            "error": error,
            "error_key": error_key,
            # After a refusal the form keeps what was typed, so it can be corrected rather than retyped.
            "typed": request.POST if error else {},
        }
    )
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("markets:floor", session.id)
    return render(request, f"{FLOOR}#board", context)


def _act(request: HttpRequest, session: Session, error_key: str, fn, *args: Any, **kwargs: Any) -> HttpResponse:
    try:
        fn(request.user, *args, **kwargs)
    except DomainError as exc:
        return _board_response(request, session, error=exc.message, error_key=error_key)
    return _board_response(request, session)


@login_required
@require_POST
def rfq_create(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(session_id)
    data = request.POST
    return _act(
        request,
        session,
        "rfq",
        services.request_rfq,
        session.id,
        data.get("give_leg", ""),
        data.get("get_leg", ""),
        data.get("quantity", ""),
    )


def _rfq_session(rfq_id: int) -> Session:
    rfq = RFQ.objects.filter(id=rfq_id).select_related("session").first()
    if rfq is None:
        raise Http404("No such RFQ")
    return rfq.session


def _quote_session(quote_id: int) -> Session:
    quote = Quote.objects.filter(id=quote_id).select_related("rfq__session").first()
    if quote is None:
        raise Http404("No such quote")
    return quote.rfq.session


@login_required
@require_POST
def quote_create(request: HttpRequest, rfq_id: int) -> HttpResponse:
    session = _rfq_session(rfq_id)
    return _act(
        request,
        session,
        f"rfq-{rfq_id}",
        services.provide_quote,
        rfq_id,
        request.POST.get("rate", ""),
        request.POST.get("ttl", "60"),
    )


@login_required
@require_POST
def rfq_cancel(request: HttpRequest, rfq_id: int) -> HttpResponse:
    return _act(request, _rfq_session(rfq_id), f"rfq-{rfq_id}", services.cancel_rfq, rfq_id)


@login_required
@require_POST
def quote_accept(request: HttpRequest, quote_id: int) -> HttpResponse:
    session = _quote_session(quote_id)
    return _act(request, session, f"quote-{quote_id}", services.accept_quote, quote_id)


@login_required
@require_POST
def quote_withdraw(request: HttpRequest, quote_id: int) -> HttpResponse:
    return _act(request, _quote_session(quote_id), f"quote-{quote_id}", services.withdraw_quote, quote_id)


def _controls_response(request: HttpRequest, session: Session, *, error: str = "", preview=None) -> HttpResponse:
    session = Session.objects.get(id=session.id)
    context = (
        selectors.viewer_context(session, request.user)
        | selectors.phase_context(session)
        | {
            "session": session,
            "control_error": error,
            "preview": preview,
        }
    )
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("markets:floor", session.id)
    return render(request, f"{FLOOR}#controls", context)


@login_required
@require_POST
def session_join(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(session_id)
    try:
        services.join_session(request.user, session.id, request.POST.get("role", ""))
    except DomainError as exc:
        return _controls_response(request, session, error=exc.message)
    return _redirect_htmx(request, "markets:floor", session.id)


@login_required
@require_POST
def session_open(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(session_id)
    try:
        services.open_session(request.user, session.id)
    except DomainError as exc:
        return _controls_response(request, session, error=exc.message)
    return _redirect_htmx(request, "markets:floor", session.id)


@login_required
def session_settle(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: show the fixing prices to confirm. POST: settle at exactly that fixing (its instant is posted back)."""
    session = _session_or_404(session_id)
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


@login_required
def portfolio(request: HttpRequest) -> HttpResponse:
    return render(request, "markets/portfolio.html", {"rows": selectors.portfolio(request.user)})


def demo_users() -> list:
    return list(get_user_model().objects.filter(is_active=True).order_by("-is_superuser", "username")[:12])


@require_POST
def demo_switch(request: HttpRequest) -> HttpResponse:
    """Demo mode only: sign in as another user in one click (as classroom market tools do)."""
    if not settings.DEMO_MODE:
        raise Http404("Demo mode is off")
    user = get_user_model().objects.filter(username=request.POST.get("username", ""), is_active=True).first()
    if user is None:
        raise Http404("No such user")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    target = request.POST.get("next") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    return redirect(target)
