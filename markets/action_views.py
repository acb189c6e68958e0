"""The monitor's "Schedule an action" (#33): the form posts here (htmx, or a plain POST without scripts), and
`services.schedule_action` checks everything and writes it, or refuses and writes nothing. A refusal is said
beside the form with what was typed; a success re-renders the monitor's list of actions (the floor's banner
arrives by the push that follows every event). Who is not the session's organiser is answered 403."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from markets import services
from markets.errors import DomainError, Forbidden
from markets.forms_actions import ActionForm
from markets.monitor_views import MONITOR, _context
from markets.selectors.monitor import monitor_session
from markets.views import refusals_shown


@login_required
@require_POST
@refusals_shown
def schedule_action(request: HttpRequest, session_id: str) -> HttpResponse:
    session = monitor_session(session_id, request.user)
    form = ActionForm(session.legs, request.POST)
    error, done = "", None
    if form.is_valid():
        d = form.cleaned_data
        try:
            done = services.schedule_action(request.user, session.id, d["kind"], d["leg"], d["cut"], **form.params())
        except Forbidden:
            raise  # 403, as the monitor's other refusals of who may act (refusals_shown)
        except DomainError as exc:
            error = exc.message
    if done is not None:
        if not request.htmx:
            messages.success(request, f"Action {done.number} scheduled: it is listed under Corporate actions.")
            return redirect("markets:monitor", session.id)
        form = ActionForm(session.legs)
    context = _context(request, session, action_form=form, action_error=error, action_done=done)
    return render(request, f"{MONITOR}#action-answer" if request.htmx else MONITOR, context)
