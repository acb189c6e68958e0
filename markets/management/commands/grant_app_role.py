"""Run the app under a role of its own that may only read and append to the event log (PostgreSQL)."""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from ledger import postgres
from ledger.models import Event
from oracle.models import Tick

APPEND_ONLY = {Event._meta.db_table, Tick._meta.db_table}
READ_ONLY = {"django_migrations"}


class Command(BaseCommand):
    help = (
        "Grant ROLE what the app needs on the migrated tables (PostgreSQL): SELECT and INSERT only on the "
        "event log and the price ticks, rows of the other tables. Run as the tables' owner, after migrate."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("role", help="The role the app connects as (it must exist and own nothing here)")

    def handle(self, *args, role: str, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("only PostgreSQL has roles: on SQLite the file's permissions are the lock")
        if not re.match(postgres.ROLE_NAME, role):
            raise CommandError(f"{role!r} is not a plain role name (letters, digits and _)")
        standing = postgres.role_standing(role, Event._meta.db_table)
        if standing is None:
            raise CommandError(
                f"no role {role!r} (or no {Event._meta.db_table} table: run migrate first). Create the role with: "
                f"CREATE ROLE {role} LOGIN PASSWORD '...'"
            )
        above_rules, owner = standing
        if above_rules or owner:
            raise CommandError(
                f"{role!r} {'is a superuser' if above_rules else 'owns the tables'}: it could disable the event "
                "log's triggers. Give the app a role of its own, and keep this one for migrations."
            )
        tables = postgres.grant_app_role(role, APPEND_ONLY, READ_ONLY)
        self.stdout.write(
            f"{role}: SELECT, INSERT on {', '.join(sorted(APPEND_ONLY))}; SELECT on {', '.join(sorted(READ_ONLY))}; "
            f"SELECT, INSERT, UPDATE, DELETE on the other {len(tables) - len(APPEND_ONLY) - len(READ_ONLY)} tables; "
            "the sequences"
        )
