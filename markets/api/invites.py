"""Endpoints for getting people in: an invite link for a session, and personal links for a list of
names (the organiser, its creator or staff). Thin: one service call each; the links are absolute, as
the request reached the site, ready to send or to turn into a QR code."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Router, Schema, Status

from markets import invite_rules
from markets.api.errors import ERRORS
from markets.api.idempotency import post
from markets.api.schemas import Input, Text, WholeNumber
from markets.models import Invite
from markets.services import invites as commands

router = Router(tags=["invites"])


class InviteIn(Input):
    role: Literal["trader", "maker"] = "trader"
    max_uses: WholeNumber = Field(
        ..., description=f"How many people may join by the link (1 to {invite_rules.MAX_USES})"
    )


class BulkIn(Input):
    names: list[Text] = Field(
        ...,
        min_length=1,
        max_length=invite_rules.MAX_PEOPLE,
        description="Display names, one per person (1-40 characters each, different ignoring case)",
        examples=[["Zoe", "Yan", "Ann Smith"]],
    )
    role: Literal["trader", "maker"] = "trader"


class InviteOut(Schema):
    id: int
    session_id: str
    role: str
    name: str = Field(..., description="A personal link's display name; empty for an open link")
    max_uses: int
    uses: int
    url: str = Field(..., description="The link to open: a name typed there, and its holder is on the floor")
    qr_url: str = Field(..., description="Its QR code as SVG (the organiser's session, signed in)")
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class BulkOut(Schema):
    invites: list[InviteOut]


def _invite_out(request: HttpRequest, invite: Invite) -> dict:
    token = invite_rules.sign(invite.token_id)
    return {
        "id": invite.id,
        "session_id": invite.session_id,
        "role": invite.role,
        "name": invite.name,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "url": request.build_absolute_uri(reverse("markets:invite_join", args=[token])),
        "qr_url": request.build_absolute_uri(reverse("markets:invite_qr", args=[invite.id])),
        "created_at": invite.created_at,
        "revoked_at": invite.revoked_at,
    }


@post(
    router,
    "/sessions/{session_id}/invites",
    response={201: InviteOut, **ERRORS},
    summary="Make an invite link for up to max_uses people (organiser; before the session opens)",
)
def create_invite(request: HttpRequest, session_id: str, payload: InviteIn):
    invite = commands.create_invite(request.auth, session_id, payload.role, payload.max_uses)
    return Status(201, _invite_out(request, invite))


@post(
    router,
    "/sessions/{session_id}/invites/bulk",
    response={201: BulkOut, **ERRORS},
    summary="One personal single-use link per name (organiser; all or nothing)",
)
def add_people_in_bulk(request: HttpRequest, session_id: str, payload: BulkIn):
    made = commands.add_people_in_bulk(request.auth, session_id, list(payload.names), role=payload.role)
    return Status(201, {"invites": [_invite_out(request, invite) for invite in made]})
