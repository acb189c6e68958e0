"""The floor's downloads: one table of a session as CSV, or the tables this viewer may have in one zip
(the rows of `markets.selectors.export`, the same the API and `manage.py export` give).

Who may see the session is `markets.access`, as everywhere. Its organiser, staff and auditors download
every table; any other viewer the log, trades, ticks, orders, fills and payouts (`export.downloadable`), with
others' sealed orders sealed. A refusal is the floor's refusal page with its status (404, 403, 409
`not_settled`), never a 500.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from markets import selectors
from markets.selectors import export
from markets.views import refusals_shown


def _attachment(body: str | bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
@refusals_shown
def export_download(request: HttpRequest, session_id: str, table: str) -> HttpResponse:
    session = selectors.session_for(session_id, request.user)
    name = export.table_name(table)
    export.require_downloadable(session, request.user, name)
    text, _ = export.csv_text(export.SessionExport(session, request.user).table(name))
    return _attachment(text, f"{session.id}-{name}.csv", "text/csv; charset=utf-8")


@login_required
@require_GET
@refusals_shown
def export_zip(request: HttpRequest, session_id: str) -> HttpResponse:
    session = selectors.session_for(session_id, request.user)
    tables = export.available(session, export.downloadable(session, request.user))
    body = export.zip_bytes(export.SessionExport(session, request.user), tables)
    return _attachment(body, export.zip_name(session), "application/zip")
