"""Endpoints for data out: one table of a session as CSV, or all its tables in one zip (the rows of
`markets.selectors.export`, the same `manage.py export` writes). Whoever may see a session through the API
may export every table of it; payouts and reconciliation exist once it settled (409 `not_settled`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Router

from markets import selectors
from markets.api.errors import ERRORS
from markets.selectors import export

router = Router(tags=["export"])


def _file(status: int, media: str, about: str) -> dict:
    return {"responses": {status: {"description": about, "content": {media: {"schema": {"type": "string"}}}}}}


def attachment(body: str | bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@router.get(
    "/sessions/{session_id}/export/{table}.csv",
    response=ERRORS,
    summary="One table as CSV: events, trades, holdings, ticks, payouts, reconciliation",
    openapi_extra=_file(200, "text/csv", "The table, exact decimal strings, UTC times"),
)
def export_table(request: HttpRequest, session_id: str, table: str):
    session = selectors.session_for(session_id, request.auth)
    name = export.table_name(table)
    text, _ = export.csv_text(export.SessionExport(session).table(name))
    return attachment(text, f"{session.id}-{name}.csv", "text/csv; charset=utf-8")


@router.get(
    "/sessions/{session_id}/export.zip",
    response=ERRORS,
    summary="Every table the session has, as one zip of CSV files",
    openapi_extra=_file(
        200, "application/zip", "events.csv, trades.csv, ... (payouts and reconciliation once settled)"
    ),
)
def export_zip(request: HttpRequest, session_id: str):
    session = selectors.session_for(session_id, request.auth)
    body = export.zip_bytes(export.SessionExport(session), export.available(session))
    return attachment(body, export.zip_name(session), "application/zip")
