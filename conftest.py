"""Fixtures shared by every app's tests: users with roles and the seed's demo session."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from ledger import clock


@pytest.fixture(autouse=True, scope="session")
def _fast_passwords():
    """Hash test passwords with MD5: PBKDF2's deliberate slowness would dominate the suite.
    PBKDF2 stays second so users made for the real server (a separate process) can sign in."""
    from django.conf import settings
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()
    yield


@pytest.fixture(autouse=True, scope="session")
def _flushable_ledger():
    """Transactional tests end with a flush (DELETE FROM or TRUNCATE every table), which the ledger's
    triggers rightly refuse. For the test database only, the flush drops and re-creates them around it."""
    import importlib

    from django.db import connection

    migration = importlib.import_module("ledger.migrations.0001_initial")
    create, drop = migration.trigger_sql(connection.vendor)
    operations = type(connection.ops)  # this engine's DatabaseOperations (nothing is connected yet)
    original = operations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        sql = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        if "ledger_event" in tables:
            sql = [*drop, *sql, *create]
        return sql

    operations.sql_flush = sql_flush
    yield
    operations.sql_flush = original


@pytest.fixture(autouse=True, scope="session")
def _no_kept_demo_passwords(tmp_path_factory):
    """The demo accounts' passwords kept by a start on the network (.demo/passwords) are this checkout's
    state, like its .env: seed_demo in a test never reads them (it gets `demo`, unless a test says otherwise)."""
    from markets import demo

    kept = demo.PASSWORDS_FILE
    demo.PASSWORDS_FILE = tmp_path_factory.mktemp("demo") / "passwords"
    yield
    demo.PASSWORDS_FILE = kept


@pytest.fixture(autouse=True)
def _no_kept_floors():
    """Every test renders its floors afresh: a test may rewrite rows under an unchanged position (which
    the app never does: every change is an event or a tick)."""
    from markets.push import snapshot

    snapshot.forget()


@pytest.fixture(autouse=True)
def _unfrozen_clock():
    """Every test starts on the real clock, whatever the previous one froze."""
    clock.set_time(None)
    yield
    clock.set_time(None)


def make_user(username: str, *, organiser: bool = False, password: str = "pw"):
    user = get_user_model().objects.create_user(username=username, password=password)
    if organiser:
        user.user_permissions.add(Permission.objects.get(codename="add_session", content_type__app_label="markets"))
        user = get_user_model().objects.get(pk=user.pk)  # drop the permission cache
    return user


@pytest.fixture
def users(db):
    """organiser `org`, traders `alice` and `bob`, makers `mm` and `mm2`, outsider `eve`."""
    return {
        "org": make_user("org", organiser=True),
        "alice": make_user("alice"),
        "bob": make_user("bob"),
        "mm": make_user("mm"),
        "mm2": make_user("mm2"),
        "eve": make_user("eve"),
    }


def create_demo(users, session_id: str = "demo", open_it: bool = True, **kwargs):
    """The seed's scenario: AAPL NVDA META ORCL, q = [100, 60, 80, 120], alice+bob trade, mm makes."""
    from markets import services

    params = {"legs": ["AAPL", "NVDA", "META", "ORCL"], "q": [100, 60, 80, 120]} | kwargs
    services.create_session(users["org"], session_id=session_id, **params)
    invited = params.get("visibility") == "participants"  # nobody joins those uninvited: the organiser adds them
    for name, role in (("alice", "trader"), ("bob", "trader"), ("mm", "maker"), ("mm2", "maker")):
        if invited:
            services.join_session(users["org"], session_id, role, username=name)
        else:
            services.join_session(users[name], session_id, role)
    if open_it:
        services.open_session(users["org"], session_id)
    from markets.models import Session

    return Session.objects.get(id=session_id)


@pytest.fixture
def demo(users):
    return create_demo(users)


def engine() -> str:
    from django.conf import settings

    return "sqlite" if "sqlite" in settings.DATABASES["default"]["ENGINE"] else "postgresql"


def pytest_addoption(parser):
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the database (CI's second engine: the others ran in the first pass)",
    )


def uses_database(item) -> bool:
    return item.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API leaves an event loop in the main thread. Tests that are
    SQLite-only by design (`@pytest.mark.sqlite_only("why")`) are skipped on PostgreSQL, saying why;
    `postgres_only` ones on SQLite. With --database-tests-only, the tests that never touch the database
    (the same on every engine) are deselected."""
    if config.getoption("--database-tests-only"):
        other = [item for item in items if not uses_database(item)]
        if other:
            config.hook.pytest_deselected(items=other)
            items[:] = [item for item in items if uses_database(item)]
    items.sort(key=lambda item: 1 if item.get_closest_marker("browser") else 0)
    running = engine()
    for item in items:
        for name, needs in (("sqlite_only", "sqlite"), ("postgres_only", "postgresql")):
            mark = item.get_closest_marker(name)
            if mark is not None and running != needs:
                why = mark.args[0] if mark.args else f"runs on {needs} only"
                item.add_marker(pytest.mark.skip(reason=f"{needs} only by design: {why}"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL the test database cannot be dropped while a connection remains: a daphne or a command
    a test stopped may still be closing its own. Wait for them (a few seconds at most) before pytest-django
    drops it; then end what is left, which is a test's leftover by then."""
    yield
    if engine() != "postgresql":
        return
    import time

    from django.db import connection

    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        for _ in range(50):
            cursor.execute(f"SELECT count(*) {others}")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)
        cursor.execute(f"SELECT pg_terminate_backend(pid) {others}")
