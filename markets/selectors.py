"""Read queries shaped for pages, the API and commands. No writes here."""

from __future__ import annotations

from markets.models import Session


def session_rows() -> list[Session]:
    return list(Session.objects.all())
