"""A locked-down event log on PostgreSQL: the app runs as a role that owns nothing and may only read and
append to the log. Trading, settling and verifying work under it; changing, deleting, truncating or
switching off the log's triggers is refused by the database itself, whatever the app's code does."""

from __future__ import annotations

import secrets
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from conftest import create_demo
from ledger.models import Event
from sessionsite import testing

postgres_only = pytest.mark.postgres_only("roles and grants are PostgreSQL's")


@pytest.fixture
def app_role():
    """A login role of the app's own, dropped afterwards (the test role needs CREATEROLE)."""
    name, password = f"sc_app_{secrets.token_hex(4)}", secrets.token_hex(12)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    parts = urlsplit(testing.test_database_url())
    url = urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 5432}"))
    yield name, url
    with connection.cursor() as cursor:
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {name}")
        cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {name}")
        cursor.execute(f"DROP ROLE {name}")


def as_app(url: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", code],
        cwd=testing.BASE_DIR, env=testing.child_env(DATABASE_URL=url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_app_trades_and_settles_as_a_role_that_can_only_append_to_the_log(users, app_role):
    import psycopg

    role, url = app_role
    create_demo(users, "alpha")
    call_command("grant_app_role", role)
    done = as_app(
        url,
        "from django.contrib.auth import get_user_model as U; from markets import services;"
        "a = U().objects.get(username='alice'); org = U().objects.get(username='org');"
        "r = services.request_rfq(a, 'alpha', 'AAPL', 'NVDA', '1'); services.cancel_rfq(a, r.id);"
        "services.settle_session(org, 'alpha', prices={'AAPL': '1', 'NVDA': '2', 'META': '3', 'ORCL': '4'});"
        "from django.core.management import call_command; call_command('verify_ledger', 'alpha')",
    )
    assert done.returncode == 0, done.stderr
    assert Event.objects.filter(stream="session-alpha", type="SessionSettled").exists()

    with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_event").fetchone()[0] > 0
        for statement in (
            "UPDATE ledger_event SET payload = '{}'",
            "DELETE FROM ledger_event",
            "TRUNCATE ledger_event",
            "ALTER TABLE ledger_event DISABLE TRIGGER ALL",
            "UPDATE oracle_tick SET price = 0",
            "DELETE FROM django_migrations",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


@postgres_only
def test_the_owner_or_a_missing_role_is_refused_with_a_message(db):
    with pytest.raises(CommandError, match="owns the tables"):
        call_command("grant_app_role", connection.settings_dict["USER"])
    with pytest.raises(CommandError, match="no role 'nobody_here'"):
        call_command("grant_app_role", "nobody_here")


@postgres_only
def test_a_role_name_that_is_not_plain_is_refused(db):
    with pytest.raises(CommandError, match="not a plain role name"):
        call_command("grant_app_role", 'x"; DROP TABLE ledger_event; --')


@pytest.mark.sqlite_only("the PostgreSQL side is tested above")
def test_on_sqlite_the_command_says_there_are_no_roles(db):
    with pytest.raises(CommandError, match="only PostgreSQL has roles"):
        call_command("grant_app_role", "sc_app")
