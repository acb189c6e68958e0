"""Prove the ledger: hash chains, replay equals the stored projection, invariants 1-4."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from ledger.store import storage_problem
from markets.audit import verify_all, verify_quick
from markets.models import Session


class Command(BaseCommand):
    help = "Verify hash chains, replay every session into a fresh projection and check invariants 1-4."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session", nargs="*", help="Session ids (default: all)")
        parser.add_argument(
            "--quick",
            action="store_true",
            help="for big logs, read-only, SQLite only: hash chains and holdings replayed from the log against "
            "the stored ones, invariants 1-2 (no rebuild of RFQs, quotes, trades or the settlement)",
        )

    def handle(self, *args, session: list[str], quick: bool, **options) -> None:
        if session:
            unknown = [s for s in session if not Session.objects.filter(id=s).exists()]
            if unknown:
                raise CommandError(f"unknown session: {', '.join(unknown)}")
        if quick:
            try:
                reports = verify_quick(session or None)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self._report(reports, "chains intact, holdings match the log, invariants 1-2 hold")
            return
        try:
            reports = verify_all(session or None)
        except DatabaseError as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            raise CommandError(
                f"cannot replay: {problem}. verify_ledger replays into the live tables inside a transaction "
                "it rolls back, so it needs a writable file: copy the database (with its -wal file) and point "
                "DATABASE_URL at the copy, or run verify_ledger --quick, which only reads"
            ) from None
        self._report(reports, "chain intact, replay matches, invariants 1-4 hold")

    def _report(self, reports, verdict: str) -> None:
        failed = [r for r in reports if not r.ok]
        for report in reports:
            status = "ok" if report.ok else "FAILED"
            self.stdout.write(f"{report.session_id}: {report.events} events, {status}")
            for problem in report.problems:
                self.stdout.write(f"  - {problem}")
        total = sum(r.events for r in reports)
        if failed:
            first = failed[0]
            raise CommandError(f"ledger verification failed in {first.session_id}: {first.problems[0]}")
        self.stdout.write(self.style.SUCCESS(f"verified {len(reports)} session(s), {total} events: {verdict}"))
