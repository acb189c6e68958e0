"""Configuration from the environment: the seed's names, clear errors for bad values."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sessionsite.config import ConfigError, database_from_url, env_bool, env_decimal, load_dotenv


def test_default_sqlite_url_is_relative_to_the_project_and_tuned_for_concurrency(tmp_path):
    db = database_from_url("sqlite:///./session_contracts.db", tmp_path)
    assert db["NAME"] == str(tmp_path / "session_contracts.db")
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]
    assert db["OPTIONS"]["timeout"] >= 20


def test_absolute_sqlite_and_postgres_urls():
    assert database_from_url("sqlite:////var/tmp/x.db")["NAME"] == "/var/tmp/x.db"
    pg = database_from_url("postgres://sc:p%40ss@db.local:5433/contracts")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"], pg["NAME"]) == (
        "sc",
        "p@ss",
        "db.local",
        "5433",
        "contracts",
    )


def test_a_postgres_urls_query_string_is_kept_and_connections_are_pooled(monkeypatch):
    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    monkeypatch.delenv("DB_POOL_MAX_SIZE", raising=False)
    pg = database_from_url("postgres://sc:pw@db.local/contracts?sslmode=require&connect_timeout=5")
    assert pg["OPTIONS"]["sslmode"] == "require" and pg["OPTIONS"]["connect_timeout"] == 5
    assert pg["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 16, "timeout": 10} and pg["CONN_MAX_AGE"] == 0
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "40")
    assert database_from_url("postgres://sc@db.local/c?pool=true")["OPTIONS"]["pool"]["max_size"] == 40


def test_without_a_pool_connections_last_as_long_as_db_conn_max_age_says(monkeypatch):
    monkeypatch.delenv("DB_CONN_MAX_AGE", raising=False)
    plain = database_from_url("postgres://sc@db.local/c?pool=false")
    assert "pool" not in plain["OPTIONS"] and plain["CONN_MAX_AGE"] == 0 and plain["CONN_HEALTH_CHECKS"]
    monkeypatch.setenv("DB_CONN_MAX_AGE", "30")
    assert database_from_url("postgres://sc@db.local/c?pool=false")["CONN_MAX_AGE"] == 30


@pytest.mark.parametrize(
    "env, url, message",
    [
        ({"DB_CONN_MAX_AGE": "30"}, "postgres://sc@h/c", "DB_CONN_MAX_AGE must be 0 with a pool"),
        ({"DB_CONN_MAX_AGE": "soon"}, "postgres://sc@h/c?pool=false", "must be a whole number of seconds"),
        ({"DB_POOL_MAX_SIZE": "1"}, "postgres://sc@h/c", "DB_POOL_MAX_SIZE='1' must be a whole number, at least 2"),
    ],
)
def test_bad_connection_settings_are_clear_errors(monkeypatch, env, url, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        database_from_url(url)


def test_unknown_database_scheme_is_a_clear_error():
    with pytest.raises(ConfigError, match="only sqlite:/// and postgres:// URLs"):
        database_from_url("mysql://x/y")


def test_booleans_and_tolerance(monkeypatch):
    monkeypatch.setenv("ALLOW_MANUAL_SETTLE", "false")
    assert env_bool("ALLOW_MANUAL_SETTLE", True) is False
    monkeypatch.setenv("ALLOW_MANUAL_SETTLE", "maybe")
    with pytest.raises(ConfigError, match="ALLOW_MANUAL_SETTLE='maybe' is not a boolean"):
        env_bool("ALLOW_MANUAL_SETTLE", True)
    monkeypatch.delenv("INVARIANT_TOLERANCE", raising=False)
    assert env_decimal("INVARIANT_TOLERANCE", "0") == Decimal(0)
    monkeypatch.setenv("INVARIANT_TOLERANCE", "1e-9")
    assert env_decimal("INVARIANT_TOLERANCE", "0") == Decimal("1e-9")
    monkeypatch.setenv("INVARIANT_TOLERANCE", "nan")
    with pytest.raises(ConfigError, match="must be a finite number"):
        env_decimal("INVARIANT_TOLERANCE", "0")


def test_dotenv_fills_only_what_the_environment_leaves_unset(tmp_path: Path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("# comment\nSC_TEST_A=from-file\nSC_TEST_B='quoted'\n\nnot a line\n")
    monkeypatch.setenv("SC_TEST_A", "from-env")
    monkeypatch.delenv("SC_TEST_B", raising=False)
    load_dotenv(env)
    import os

    assert os.environ["SC_TEST_A"] == "from-env"
    assert os.environ["SC_TEST_B"] == "quoted"
    monkeypatch.delenv("SC_TEST_B")


def _check_deploy(secret: str) -> str:
    import os
    import subprocess
    import sys

    from sessionsite.testing import BASE_DIR

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | {"SECRET_KEY": secret}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    return done.stdout + done.stderr


def test_check_deploy_flags_a_weak_secret_key_given_by_hand():
    """A SECRET_KEY set by hand is used as given, and `check --deploy` still says when it is weak (without one,
    the installation's own random key is used: tests/test_secret_key.py)."""
    assert "security.W009" in _check_deploy("short-key")
    assert "security.W009" not in _check_deploy("x7Q" + "a-long-random-value-made-once-per-installation-" * 2)


def test_network_urls_are_base_urls_one_each(monkeypatch):
    from sessionsite.config import url_list

    monkeypatch.setenv("NETWORK_URLS", "http://192.0.2.2:8765  http://[fd00::2]:8765/,http://vm:8765/")
    assert url_list("NETWORK_URLS") == ["http://192.0.2.2:8765/", "http://[fd00::2]:8765/", "http://vm:8765/"]
    monkeypatch.setenv("NETWORK_URLS", "192.0.2.2:8765")
    with pytest.raises(ConfigError, match="is not an http:// or https:// address"):
        url_list("NETWORK_URLS")
