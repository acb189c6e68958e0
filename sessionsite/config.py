"""Configuration from the environment and an optional `.env` file (seed names kept).

Kept dependency-free on purpose: settings import it before Django is configured.
"""

from __future__ import annotations

import os
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def env_file() -> Path | None:
    """The file of settings to read: `ENV_FILE` if set (empty: none), else `.env` in the project folder.
    The test suite (pytest sets PYTEST_VERSION, for the processes its tests start too) reads none: what a
    developer's .env holds (the demo's database, DEMO_MODE, a key) must change no test."""
    if "ENV_FILE" in os.environ:
        return Path(os.environ["ENV_FILE"]) if os.environ["ENV_FILE"] else None
    return None if os.environ.get("PYTEST_VERSION") else BASE_DIR / ".env"


def load_dotenv(path: Path | None) -> None:
    """Read KEY=VALUE lines into os.environ without overriding what is already set."""
    if path is None or not path.is_file():
        return
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip().strip('"').strip("'")
        os.environ.setdefault(key.strip(), value)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def env_decimal(name: str, default: str) -> Decimal:
    value = os.environ.get(name) or default
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{name}={value!r} must be a finite number >= 0")
    return result


def url_list(name: str) -> list[str]:
    """Base URLs separated by spaces or commas (`http://192.0.2.2:8000/ http://[fd00::2]:8000/`), each
    ending in one slash."""
    urls = []
    for url in os.environ.get(name, "").replace(",", " ").split():
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ConfigError(f"{name}: {url!r} is not an http:// or https:// address")
        urls.append(url.rstrip("/") + "/")
    return urls


# Keys published with the code (the development key of earlier versions): whoever holds one can sign
# cookies this site trusts. Refused, never used.
PUBLIC_SECRET_KEYS = frozenset({"django-insecure-session-contracts-development-key"})


def secret_key() -> str:
    """SECRET_KEY from the environment (or the settings file), else this installation's own key, made at
    random on first use and kept in `SECRET_KEY_FILE` (default `.secret_key` in the project folder), so every
    process of one installation signs and checks with the same key. Never a key anyone else knows."""
    given = os.environ.get("SECRET_KEY", "").strip()
    if given:
        if given in PUBLIC_SECRET_KEYS or given.startswith("django-insecure"):
            raise ConfigError(
                "SECRET_KEY is a published development key: anyone can sign cookies with it. Remove it (a key "
                "of this installation's own is then made) or set a long random one"
            )
        return given
    return kept_secret(Path(os.environ.get("SECRET_KEY_FILE") or BASE_DIR / ".secret_key"))


def kept_secret(path: Path) -> str:
    """The key kept in `path`, made if missing: written whole to a private file (mode 600) first, then linked
    into place, which fails if another process got there first; both then read the one that won."""
    kept = _read_key(path)
    if kept is None:
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(50) + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process made it a moment ago: its key is the installation's
        except OSError as exc:
            raise ConfigError(f"cannot make the secret key file {path} ({exc.strerror}): set SECRET_KEY") from None
        finally:
            draft.unlink(missing_ok=True)
        kept = _read_key(path) or ""
    if len(kept) < 50:
        raise ConfigError(f"SECRET_KEY_FILE {path} holds no usable key (under 50 characters): delete it to make one")
    return kept


def _read_key(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"SECRET_KEY_FILE {path} cannot be read ({exc.strerror})") from None


SQLITE_OPTIONS = {
    # Writers queue on BEGIN IMMEDIATE instead of failing late with "database is locked".
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
}


def sqlite_conn_max_age() -> int | None:
    """DB_CONN_MAX_AGE seconds for SQLite (default 600)."""
    age = os.environ.get("DB_CONN_MAX_AGE", "600")
    if not age.isdigit():
        raise ConfigError(f"DB_CONN_MAX_AGE={age!r} must be a whole number of seconds")
    return int(age)


def database_from_url(url: str, base_dir: Path = BASE_DIR) -> dict:
    """Turn `sqlite:///./file.db` or `postgres://user:pw@host:port/name` into a DATABASES entry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        raw_path = unquote(url.split("://", 1)[1])
        # sqlite:///./x.db and sqlite:///x.db are relative to the project; sqlite:////abs/x.db absolute.
        path_text = raw_path[1:] if raw_path.startswith("/") else raw_path
        path = Path(path_text)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": dict(SQLITE_OPTIONS),
            # Kept open: opening a SQLite file runs the PRAGMAs, and closing the last connection to it
            # checkpoints the write-ahead log. Channels runs every socket's reads on one thread, which
            # opened and closed the file for each (a third of a reconnect storm's time). A request's
            # own thread ends with its request, and its connection with it.
            "CONN_MAX_AGE": sqlite_conn_max_age(),
            "CONN_HEALTH_CHECKS": True,
            "TEST": {"NAME": str(path.with_name(path.stem + "_test.db"))},
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        return postgres_from_url(url)
    raise ConfigError(f"DATABASE_URL={url!r}: only sqlite:/// and postgres:// URLs are supported")


def postgres_from_url(url: str) -> dict:
    """A PostgreSQL DATABASES entry by dj-database-url: the URL's query string becomes the connection's
    OPTIONS (`?sslmode=require&connect_timeout=5`). Connections come from Django's psycopg pool unless the
    URL says `?pool=false`: under ASGI every request runs in a thread of its own, so a connection kept per
    thread (CONN_MAX_AGE) is one more connection per request until PostgreSQL refuses; a pool hands the
    same few around. DB_POOL_MAX_SIZE (default 16) caps it per process. Without a pool, DB_CONN_MAX_AGE
    (default 0: one connection per request, Django's advice under ASGI)."""
    import dj_database_url

    try:
        db = dj_database_url.parse(url, conn_health_checks=True)
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL={url!r} cannot be read: {exc}") from None
    options = db.setdefault("OPTIONS", {})
    pooled = options.get("pool", True) is not False
    age = os.environ.get("DB_CONN_MAX_AGE", "0")
    if not age.isdigit():
        raise ConfigError(f"DB_CONN_MAX_AGE={age!r} must be a whole number of seconds")
    if pooled and int(age):
        raise ConfigError("DB_CONN_MAX_AGE must be 0 with a pool (the pool keeps the connections); or ?pool=false")
    if pooled:
        size = os.environ.get("DB_POOL_MAX_SIZE", "16")
        if not size.isdigit() or int(size) < 2:
            raise ConfigError(f"DB_POOL_MAX_SIZE={size!r} must be a whole number, at least 2")
        options["pool"] = {"min_size": 2, "max_size": int(size), "timeout": 10}
    else:
        options.pop("pool", None)
    db["CONN_MAX_AGE"] = int(age)
    db["CONN_HEALTH_CHECKS"] = not pooled  # the pool checks its connections itself
    db["PORT"] = str(db.get("PORT") or "")
    return db
