"""The pages that get people in: the organiser's invites page (links with their limits, QR codes for a
projector, personal links for a pasted list, as a table and a CSV) and the page a link opens,
`/join/<token>`, where a display name is all it takes to land on the floor, joined.

Thin like markets.views: one service or one read each; a refusal is shown next to the form that
caused it, or as a page with its status, never a 500. A browser that joined keeps a signed cookie for
that session naming the link and the user, so after signing out that same link offers "Continue as
<name>" on that browser only (even after the opening), while the link stands. A latecomer (the session
opened, closed or was cancelled) is told so plainly, with the floor to watch if the session is public.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any
from urllib.parse import urlsplit

import segno
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from markets import demo, invite_rules
from markets.errors import DomainError, http_status
from markets.models import Invite, Session
from markets.selectors import invites as reads
from markets.selectors.export import spreadsheet_safe
from markets.services import invites as commands
from markets.views import refusals_shown

INVITES = "markets/invites.html"
JOIN = "markets/join.html"
RETURNING_AGE = dt.timedelta(days=14)
STATE_STATUS = {"open": 200, "revoked": 410, "used_up": 409, "closed": 409}
_BATCH = re.compile(r"[0-9a-f]{1,16}")


def _linker(request: HttpRequest):
    """The absolute address of a join page as this request reached the site (what a phone must open)."""
    return lambda token: request.build_absolute_uri(reverse("markets:invite_join", args=[token]))


def _network_urls(request: HttpRequest, session: Session) -> list[str]:
    """This page at the server's network addresses (settings.NETWORK_URLS) when it was opened at this
    machine's own address (127.0.0.1, localhost): links and QR codes made there open on no phone."""
    host = urlsplit(f"//{request.get_host()}").hostname or ""
    if not settings.NETWORK_URLS or not (host == "localhost" or demo.is_loopback(host)):
        return []
    page = reverse("markets:invites", args=[session.id]).lstrip("/")
    return [base + page for base in settings.NETWORK_URLS]


def qr_svg(url: str) -> bytes:
    """A QR code of `url` as SVG, big enough for a projector (segno, error correction M)."""
    buffer = io.BytesIO()
    segno.make_qr(url, error="m").save(buffer, kind="svg", scale=10, border=4)
    return buffer.getvalue()


def _status(exc: DomainError) -> int:
    return 410 if exc.code == "invite_revoked" else http_status(exc)


# ---------------------------------------------------------------- the organiser's page


def _page(request: HttpRequest, session: Session, **extra: Any) -> dict[str, Any]:
    session = Session.objects.get(id=session.id)
    lists = reads.session_invites(session, _linker(request))
    return {
        "session": session,
        "joinable": session.status == Session.Status.CREATED,
        "links": lists["links"],
        "personal": lists["personal"],
        "roles": Invite.Role.choices,
        "max_uses": invite_rules.MAX_USES,
        "max_people": invite_rules.MAX_PEOPLE,
        "network_urls": _network_urls(request, session),
    } | extra


@login_required
@require_GET
@refusals_shown
def invites(request: HttpRequest, session_id: str) -> HttpResponse:
    session = reads.manageable_session(session_id, request.user)
    return render(request, INVITES, _page(request, session))


@login_required
@require_POST
@refusals_shown
def invite_create(request: HttpRequest, session_id: str) -> HttpResponse:
    session = reads.manageable_session(session_id, request.user)
    data = request.POST
    try:
        commands.create_invite(request.user, session.id, data.get("role", ""), data.get("max_uses", ""))
    except DomainError as exc:
        context = _page(request, session, create_error=exc.message, typed=data)
        if request.htmx:
            return render(request, f"{INVITES}#links_panel", context)
        return render(request, INVITES, context, status=http_status(exc))
    if request.htmx:
        return render(request, f"{INVITES}#links_panel", _page(request, session))
    return redirect("markets:invites", session.id)


@login_required
@require_POST
@refusals_shown
def invite_revoke(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = reads.manageable_invite(invite_id, request.user)
    error = ""
    try:
        invite = commands.revoke_invite(request.user, invite.id)
    except DomainError as exc:
        error = exc.message
    if not request.htmx:
        return redirect("markets:invites", invite.session_id)
    row = reads.invite_rows([invite], _linker(request))[0]
    return render(request, f"{INVITES}#invite_row", {"row": row, "row_error": error})


@login_required
@require_POST
@refusals_shown
def invite_bulk(request: HttpRequest, session_id: str) -> HttpResponse:
    session = reads.manageable_session(session_id, request.user)
    typed = request.POST.get("names", "")
    status = 200
    try:
        made = commands.add_people_in_bulk(request.user, session.id, typed, role=request.POST.get("role", "trader"))
    except DomainError as exc:
        status = http_status(exc)
        extra = {"bulk_problems": getattr(exc, "problems", [exc.message]), "bulk_typed": typed}
    else:
        batch = made[0].batch if made else ""
        extra = {"bulk_rows": reads.invite_rows(made, _linker(request)), "batch": batch}
    context = _page(request, session, **extra)
    if not request.htmx:
        return render(request, INVITES, context, status=status)
    panel = render_to_string(f"{INVITES}#bulk_panel", context, request)
    personal = render_to_string(f"{INVITES}#personal_panel", context | {"oob": True}, request)
    return HttpResponse(panel + personal)


@login_required
@require_GET
@refusals_shown
def invites_csv(request: HttpRequest, session_id: str) -> HttpResponse:
    """The personal links still to hand out (one pasted batch, or all) as CSV: name, role, link."""
    session = reads.manageable_session(session_id, request.user)
    batch = request.GET.get("batch", "")
    rows = reads.personal_rows(session, _linker(request), batch if _BATCH.fullmatch(batch) else None)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    suffix = f"-{batch}" if _BATCH.fullmatch(batch) else ""
    response["Content-Disposition"] = f'attachment; filename="{session.id}-invites{suffix}.csv"'
    writer = csv.writer(response)
    writer.writerow(["name", "role", "link"])
    for row in rows:
        writer.writerow([spreadsheet_safe(row.invite.name), row.invite.role, row.url])
    return response


@login_required
@require_GET
@refusals_shown
def invite_qr(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = reads.manageable_invite(invite_id, request.user)
    url = _linker(request)(invite_rules.sign(invite.token_id))
    response = HttpResponse(qr_svg(url), content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=300"
    return response


# ---------------------------------------------------------------- the page a link opens


def _cookie(session: Session) -> tuple[str, str]:
    """The returning cookie's name and salt: one per session, signed for this use only. Its value binds
    the invite link and the user (`invite_rules.returning_value`); the server checks both."""
    return f"sc_joined_{session.id}", f"markets.invites.returning.v2:{session.id}"


def _returning(request: HttpRequest, invite: Invite):
    name, salt = _cookie(invite.session)
    value = request.get_signed_cookie(name, default=None, salt=salt, max_age=RETURNING_AGE)
    return reads.returning_guest(invite, value)


def _remember(request: HttpRequest, response: HttpResponse, invite: Invite, user) -> HttpResponse:
    name, salt = _cookie(invite.session)
    response.set_signed_cookie(
        name,
        invite_rules.returning_value(invite.token_id, user.pk),
        salt=salt,
        max_age=int(RETURNING_AGE.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


def _join_page(request: HttpRequest, invite: Invite, status: int | None = None, **extra: Any) -> HttpResponse:
    returning = _returning(request, invite)
    state = reads.invite_state(invite)
    refusal = reads.link_refusal(invite)
    message = refusal.message if refusal is not None else ""
    if state == "closed":  # a latecomer: say plainly what happened, and offer to watch where anyone may
        message = reads.latecomer_message(invite.session)
    context = {
        "invite": invite,
        "session": invite.session,
        "state": state,
        "state_message": message,
        "watch": state == "closed" and invite.session.visibility == Session.Visibility.PUBLIC,
        "returning": returning,
        "returning_name": reads.display_name(returning) if returning is not None else "",
        "name_max": invite_rules.NAME_MAX,
    } | extra
    if status is None:
        status = 200 if returning is not None else STATE_STATUS[state]
    return render(request, JOIN, context, status=status)


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    invite = reads.invite_for_token(token)
    if invite is None:
        context = {"state": "invalid", "state_message": commands.INVALID_LINK}
        return render(request, JOIN, context, status=404)
    session = invite.session
    if reads.is_participant(session, request.user):
        return redirect("markets:floor", session.id)  # already in: the link is the way back to the floor
    if request.method == "GET":
        return _join_page(request, invite)
    action = request.POST.get("action", "join")
    if action == "continue":
        returning = _returning(request, invite)
        if returning is None:
            error = "This browser has not joined this session by this link: join with your name"
            return _join_page(request, invite, status=409, error=error)
        login(request, returning, backend=settings.SIGN_IN_BACKEND)
        return _remember(request, redirect("markets:floor", session.id), invite, returning)
    if action == "forget":
        response = redirect("markets:invite_join", token)
        response.delete_cookie(_cookie(session)[0], samesite="Lax")
        return response
    typed = request.POST.get("name", "")
    if action == "watch":  # a latecomer to a public session: a guest who watches, holding nothing
        try:
            commands.watch_by_invite(
                token, typed, sign_in=lambda user: login(request, user, backend=settings.SIGN_IN_BACKEND)
            )
        except DomainError as exc:
            return _join_page(request, invite, status=_status(exc), error=exc.message, typed=typed[:200])
        return redirect("markets:floor", session.id)
    try:
        participant = commands.join_by_invite(
            token, typed, sign_in=lambda user: login(request, user, backend=settings.SIGN_IN_BACKEND)
        )
    except DomainError as exc:
        invite = reads.invite_for_token(token) or invite  # as it stands after the refusal
        return _join_page(request, invite, status=_status(exc), error=exc.message, typed=typed[:200])
    return _remember(request, redirect("markets:floor", session.id), invite, participant.user)
