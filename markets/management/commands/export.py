"""Export one session as CSV files (or one zip of them): its log, trades, holdings over time, ticks, orders
and batch fills, and once settled its payouts and settlement reconciliation. The rows come from
`markets.selectors.export`, the same the API and the floor hand out; this is the operator's export, every
order whole (the API and the floor seal others' orders for a viewer who may not read them)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from django.core.management.base import BaseCommand, CommandError

from markets.errors import DomainError
from markets.selectors import export


class Command(BaseCommand):
    help = (
        "Export SESSION as CSV: events, trades, holdings (over time), ticks, orders, fills (batch auctions), and "
        "once settled payouts and reconciliation. Writes DIR/<table>.csv (default ./export-SESSION/), or with --zip one "
        "DIR/SESSION-export.zip (default DIR: the current directory)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("session", help="Session id")
        parser.add_argument("--out", metavar="DIR", help="Directory to write into (created if missing)")
        parser.add_argument(
            "--table",
            action="extend",
            nargs="+",
            default=[],
            metavar="NAME",
            help=f"Only these tables (repeatable): {', '.join(export.TABLES)}. Default: every table the "
            "session has (payouts and reconciliation once settled)",
        )
        parser.add_argument("--zip", action="store_true", help="Write one SESSION-export.zip instead of CSV files")

    def handle(self, *args, session: str, out: str | None, table: list[str], zip: bool, **options) -> None:
        # Everything is checked before anything is written: a refusal leaves no file behind.
        try:
            found = export.find_session(session)
            names = list(dict.fromkeys(export.table_name(t) for t in table))
            for name in names:
                export.require_settled(found, name)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        tables = names or export.available(found)
        skipped = [] if names else [t for t in export.TABLES if t not in tables]
        target = Path(out) if out else Path("." if zip else f"export-{found.id}")
        if target.exists() and not target.is_dir():
            raise CommandError(f"--out {target}: exists and is not a directory")
        snapshot = export.SessionExport(found)
        try:
            written = self._zip(snapshot, tables, target) if zip else self._csv(snapshot, tables, target)
        except OSError as exc:
            raise CommandError(f"cannot write to {target}: {exc.strerror or exc}") from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for line in written:
            self.stdout.write(line)
        for name in skipped:
            self.stdout.write(f"{name}.csv: skipped ({found.id} is not settled)")

    def _csv(self, snapshot: export.SessionExport, tables: list[str], target: Path) -> list[str]:
        def write(name: str):
            table = snapshot.table(name)
            return table.filename, "w", lambda fh: export.write_csv(table, fh)

        written = _write_all(target, [write(name) for name in tables])
        return [f"{target / filename}: {count} rows" for filename, count in written]

    def _zip(self, snapshot: export.SessionExport, tables: list[str], target: Path) -> list[str]:
        counts: dict[str, int] = {}

        def write(fh) -> int:
            counts.update(export.write_zip(snapshot, tables, fh))
            return sum(counts.values())

        [(filename, _)] = _write_all(target, [(export.zip_name(snapshot.session), "wb", write)])
        path = target / filename
        return [*(f"{path}: {name}: {count} rows" for name, count in counts.items()), f"wrote {path}"]


def _write_all(target: Path, files: list[tuple[str, str, Callable[[IO], int]]]) -> list[tuple[str, int]]:
    """Write each file into a hidden temporary beside its place and rename them all into place once every
    one is complete: a failure part-way leaves nothing behind (not even the directories made for it)."""
    made = [p for p in (target, *target.parents) if not p.exists()]
    target.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    done: list[tuple[str, Path, int]] = []
    try:
        for filename, mode, write in files:
            fd, tmp = tempfile.mkstemp(prefix=f".{filename}.", dir=target)
            done.append((filename, Path(tmp), 0))
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
                done[-1] = (filename, Path(tmp), write(fh))
            os.chmod(tmp, 0o666 & ~umask)  # as an ordinary file would be made, not mkstemp's 0600
    except BaseException:
        for _, tmp, _ in done:
            tmp.unlink(missing_ok=True)
        for path in made:  # the deepest first
            path.rmdir()
        raise
    for filename, tmp, _ in done:
        tmp.replace(target / filename)
    return [(filename, count) for filename, _, count in done]
