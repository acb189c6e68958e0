"""Writing the tables of `markets.selectors.export`: RFC 4180 CSV whose cells a spreadsheet cannot run, and
one zip of them dated by the export's cut (the same session exports to the same bytes)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from ledger.models import Event

if TYPE_CHECKING:
    from markets.models import Session
    from markets.selectors.export import SessionExport, Table

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet cannot run as a formula: text that starts like one (=, +, -, @, a tab or a
    carriage return: a name such as "@SUM(...)" or "+cmd") gets a leading apostrophe, which spreadsheets
    take as "this is text". Numbers, negative ones too, stay exactly as written."""
    if cell[:1] in FORMULA_START and not NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def write_csv(table: Table, out: TextIO) -> int:
    """Write the table as RFC 4180 CSV (CRLF, quoted where needed), every cell `spreadsheet_safe`;
    returns its rows (not the header)."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.header)
    count = 0
    for row in table.rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        count += 1
    return count


def csv_text(table: Table) -> tuple[str, int]:
    out = io.StringIO()
    count = write_csv(table, out)
    return out.getvalue(), count


def zip_name(session: Session) -> str:
    return f"{session.id}-export.zip"


def write_zip(export: SessionExport, tables: Sequence[str], out) -> dict[str, int]:
    """One zip of `tables` (events.csv, ...) into the binary file `out`; {file name: rows}. Each member is
    dated by the cut's event, so the same session exports to the same bytes."""
    last = Event.objects.filter(seq=export.cut).values_list("at", flat=True).first()
    stamp = last.timetuple()[:6] if last is not None and last.year >= 1980 else (1980, 1, 1, 0, 0, 0)
    counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in tables:
            table = export.table(name)
            text, counts[table.filename] = csv_text(table)
            info = zipfile.ZipInfo(table.filename, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode())
    return counts


def zip_bytes(export: SessionExport, tables: Sequence[str]) -> bytes:
    out = io.BytesIO()
    write_zip(export, tables, out)
    return out.getvalue()
