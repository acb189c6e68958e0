"""The way back in: the page a rejoin link opens (`/rejoin/<token>`: signs that guest in and opens their
floor), and a participant's link with its QR code as the organiser's monitor dialog and the
participant's own "Open this on another device" show it, with "Revoke and make a new one".

Thin like markets.views: one read or one service each (markets.selectors.rejoin,
markets.services.rejoin); a refusal is a page or a panel saying what happened, never a 500.
"""

from __future__ import annotations

from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from markets.errors import DomainError, http_status
from markets.models import Participant
from markets.selectors import rejoin as reads
from markets.selectors.invites import display_name
from markets.services import rejoin as commands
from markets.views import refusals_shown

PANEL = "markets/rejoin_panel.html"
OPENED = "markets/rejoin.html"
INVALID = "This rejoin link is not valid: check that it was copied whole, or ask the organiser for a new one"


def _linker(request: HttpRequest):
    """The absolute address of a rejoin page as this request reached the site (what a phone must open)."""
    return lambda token: request.build_absolute_uri(reverse("markets:rejoin", args=[token]))


def qr_inline(url: str) -> str:
    """A QR code of `url` as inline SVG (segno; the address is only drawn, never written as text)."""
    return mark_safe(segno.make_qr(url, error="m").svg_inline(scale=4, border=3, omitsize=True, svgclass="qr-svg"))


# ---------------------------------------------------------------- the link, as the organiser and its owner see it


def _panel(request: HttpRequest, participant: Participant, *, error: str = "", notice: str = "") -> HttpResponse:
    link = reads.live_link(participant)
    refusal = reads.no_link_refusal(participant)
    if link is None and refusal is None:
        link = commands.issue_rejoin_link(request.user, participant.session_id, participant.user_id)
    view = reads.rejoin_view(participant, link, _linker(request), refusal)
    context: dict[str, Any] = {
        "view": view,
        "session": participant.session,
        "own": participant.user_id == request.user.pk,
        "qr": qr_inline(view.url) if view.url else "",
        "error": error,
        "notice": notice,
    }
    return render(request, f"{PANEL}#panel" if request.htmx else PANEL, context)


@login_required
@require_GET
@refusals_shown
def rejoin_link(request: HttpRequest, session_id: str, user_id: int) -> HttpResponse:
    """A participant's live rejoin link with its QR code (made if they have none yet)."""
    return _panel(request, reads.viewable_participant(session_id, user_id, request.user))


@login_required
@require_POST
@refusals_shown
def rejoin_revoke(request: HttpRequest, session_id: str, user_id: int) -> HttpResponse:
    """Kill the live link for everyone, at once, and show the next one."""
    participant = reads.viewable_participant(session_id, user_id, request.user)
    try:
        commands.revoke_rejoin_link(request.user, participant.session_id, participant.user_id)
    except DomainError as exc:
        return _panel(request, participant, error=exc.message)
    if participant.user_id == request.user.pk:  # their own: this browser stays signed in, the others do not
        update_session_auth_hash(request, get_user_model().objects.get(pk=request.user.pk))
    notice = "The old link no longer works, and every other device it signed in is signed out. This is the new one."
    if not request.htmx:
        messages.success(request, notice)
        return redirect("markets:rejoin_link", participant.session_id, participant.user_id)
    return _panel(request, participant, notice=notice)


# ---------------------------------------------------------------- the page a rejoin link opens


def _opened(request: HttpRequest, status: int, **context: Any) -> HttpResponse:
    return render(request, OPENED, context, status=status)


@require_http_methods(["GET", "POST"])
def rejoin(request: HttpRequest, token: str) -> HttpResponse:
    """GET: the page that offers "Continue as <name>"; its POST signs the link's guest in and opens their
    floor. Never on a GET: a link unfurled by a chat app, or planted in another page, signs in nobody, and
    a browser signed in as someone else (the organiser testing the link) is told whom it would replace."""
    link = reads.link_for_token(token)
    if link is None:
        return _opened(request, 404, title="This link does not work", message=INVALID)
    participant, session = link.participant, link.session
    floor = reverse("markets:floor", args=[session.id])
    name = display_name(participant.user)
    if request.user.is_authenticated and request.user.pk == participant.user_id:
        return redirect(floor)
    refusal = reads.use_refusal(link)
    if refusal is not None:
        status = 410 if refusal.code == "rejoin_revoked" else http_status(refusal)
        login_url = f"{reverse('login')}?next={floor}" if refusal.code == "rejoin_has_password" else ""
        return _opened(request, status, title=f"Back to {session.id}", message=refusal.message, login_url=login_url)
    if request.method == "GET":  # one tap signs in: a link opened by a preview bot or a page signs in nobody
        switch = request.user.is_authenticated
        return _opened(request, 200, title=f"Back to {session.id}", name=name, session=session, switch=switch)
    login(request, participant.user, backend=settings.SIGN_IN_BACKEND)
    return redirect(floor)
