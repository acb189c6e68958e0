"""The organiser's monitor page (`/sessions/<id>/monitor`): thin views like markets.views, one selector
(markets.selectors.monitor) and the session's commands (open, pause, resume, settle).

The page connects to the floor's socket with `?monitor=1` (markets.push.consumers) and re-reads its
`live` partial when told something changed, and every 10 s (static/js/monitor.js). A refusal is shown
next to the control that caused it; nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from markets import selectors, services
from markets.errors import DomainError
from markets.forms_actions import ActionForm
from markets.models import Participant, Session
from markets.selectors.monitor import monitor_context, monitor_session
from markets.views import open_confirmation, refusals_shown

MONITOR = "markets/monitor.html"


def _context(request: HttpRequest, session: Session, **extra: Any) -> dict[str, Any]:
    context = monitor_context(session.id)
    me = Participant.objects.filter(session_id=session.id, user=request.user).first()
    organiser = bool(me and me.role == Participant.Role.ORGANISER)
    form = ActionForm(session.legs)  # the monitor's "Schedule an action" (markets.action_views)
    return context | {"me": me, "is_organiser": organiser, "action_form": form} | extra


@login_required
@require_GET
@refusals_shown
def monitor(request: HttpRequest, session_id: str) -> HttpResponse:
    session = monitor_session(session_id, request.user)
    return render(request, MONITOR, _context(request, session))


@login_required
@require_GET
@refusals_shown
def monitor_live(request: HttpRequest, session_id: str) -> HttpResponse:
    """The live part (phase, invariants, totals, the participants), with the controls out of band unless
    the page is using them (`?controls=0`: a reason being typed, a settlement being confirmed)."""
    session = monitor_session(session_id, request.user)
    context = _context(request, session, with_controls=request.GET.get("controls") != "0")
    return render(request, f"{MONITOR}#live", context)


def _controls(
    request: HttpRequest, session: Session, *, error: str = "", preview=None, confirm_open=None
) -> HttpResponse:
    """After a control: the controls again (with the refusal inline), and the live part out of band."""
    if not request.htmx and request.method == "POST":
        if error:
            messages.error(request, error)
        return redirect("markets:monitor", session.id)
    typed = request.POST if error else {}
    context = _context(request, session, control_error=error, preview=preview, confirm_open=confirm_open, typed=typed)
    # Without scripts, the settlement's preview is shown on the whole page.
    return render(request, f"{MONITOR}#answer" if request.htmx else MONITOR, context)


def _act(request: HttpRequest, session: Session, fn: Callable[..., object], *args: Any, **kwargs: Any) -> HttpResponse:
    try:
        fn(request.user, session.id, *args, **kwargs)
    except DomainError as exc:
        return _controls(request, session, error=exc.message)
    return _controls(request, session)


@login_required
@require_http_methods(["GET", "POST"])
@refusals_shown
def monitor_open(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: say how many joined, to confirm. POST (the confirm): allocate and open, as the floor's does
    (asked again if the count moved since)."""
    session = monitor_session(session_id, request.user)
    confirm = open_confirmation(session, request.POST.get("holders") if request.method == "POST" else None)
    if request.method == "GET" or confirm["changed"]:
        return _controls(request, session, confirm_open=confirm)
    return _act(request, session, services.open_session)


@login_required
@require_POST
@refusals_shown
def monitor_pause(request: HttpRequest, session_id: str) -> HttpResponse:
    session = monitor_session(session_id, request.user)
    return _act(request, session, services.pause_trading, request.POST.get("reason", ""))


@login_required
@require_POST
@refusals_shown
def monitor_resume(request: HttpRequest, session_id: str) -> HttpResponse:
    return _act(request, monitor_session(session_id, request.user), services.resume_trading)


@login_required
@require_POST
@refusals_shown
def monitor_clear(request: HttpRequest, session_id: str) -> HttpResponse:
    """A batch session: cut the book now, as the floor's "Clear now" does (the batch list shows it)."""
    return _act(request, monitor_session(session_id, request.user), services.clear_batch)


@login_required
@require_http_methods(["GET", "POST"])
@refusals_shown
def monitor_settle(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET: the fixing's prices, to confirm. POST: settle at exactly that fixing (its instant is posted
    back), as the floor's settle does."""
    session = monitor_session(session_id, request.user)
    if request.method == "GET":
        return _controls(request, session, preview=selectors.fixing_preview(session))
    fixing_at = None
    if request.POST.get("fixing_at"):
        try:
            fixing_at = dt.datetime.fromisoformat(request.POST["fixing_at"])
        except ValueError:
            return _controls(request, session, error="The fixing time is not a valid date")
    return _act(request, session, services.settle_session, fixing_at=fixing_at)
