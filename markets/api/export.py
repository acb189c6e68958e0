"""Endpoints for data out: one table of a session as CSV, or all its tables in one zip (the rows of
`markets.selectors.export`, the same `manage.py export` writes). Who may have which table is the floor's
rule (`export.downloadable`): the session's organiser, staff and auditors every table; any other viewer the
log, trades, ticks, orders, fills and payouts (403 `not_organiser` for holdings and reconciliation; the zip
holds only theirs), with others' orders still sealed left sealed in events.csv and orders.csv. Payouts and
reconciliation exist once the session settled (409 `not_settled`)."""

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
    summary="One table as CSV: events, trades, holdings, ticks, orders, fills, payouts, reconciliation, fixing, margin",
    openapi_extra=_file(200, "text/csv", "The table, exact decimal strings, UTC times"),
)
def export_table(request: HttpRequest, session_id: str, table: str):
    session = selectors.session_for(session_id, request.auth)
    name = export.table_name(table)
    export.require_downloadable(session, request.auth, name)
    text, _ = export.csv_text(export.SessionExport(session, request.auth).table(name))
    return attachment(text, f"{session.id}-{name}.csv", "text/csv; charset=utf-8")


@router.get(
    "/sessions/{session_id}/export.zip",
    response=ERRORS,
    summary="Every table the session has that this caller may have, as one zip of CSV files",
    openapi_extra=_file(
        200, "application/zip", "The tables this caller may have (payouts and reconciliation once settled)"
    ),
)
def export_zip(request: HttpRequest, session_id: str):
    session = selectors.session_for(session_id, request.auth)
    tables = export.available(session, export.downloadable(session, request.auth))
    body = export.zip_bytes(export.SessionExport(session, request.auth), tables)
    return attachment(body, export.zip_name(session), "application/zip")
