"""What every benchmark section shares: the scratch database, users and sessions, timing and figures."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent


def setup_django(workdir: Path) -> Path:
    """Point Django at a scratch SQLite file in `workdir` (never the project's own database) and migrate it.

    Returns the path of an empty, migrated copy of the schema, for sections that need their own file.
    """
    db = workdir / "bench.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "sessionsite.settings"
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    schema = workdir / "schema.sqlite3"
    connection.ensure_connection()
    copy_db(connection.connection, schema)
    return schema


def copy_db(source: sqlite3.Connection | Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), with SQLite's backup API."""
    if target.exists():
        target.unlink()
    src = sqlite3.connect(source) if isinstance(source, Path) else source
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        if isinstance(source, Path):
            src.close()


def set_synchronous(mode: str) -> None:
    """Switch the Django connection's `PRAGMA synchronous` (the project connects with FULL)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return  # PostgreSQL commits durably (synchronous_commit on) throughout
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA synchronous={mode}")


@contextlib.contextmanager
def fast_setup() -> Iterator[None]:
    """Bulk setup (not measured): one outer transaction and no fsync, back to FULL afterwards."""
    from django.db import transaction

    set_synchronous("OFF")
    try:
        with transaction.atomic():
            yield
    finally:
        set_synchronous("FULL")


def make_users(names: list[str], *, organisers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Users without a usable password (the bench signs them in with force_login or tokens)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    model = get_user_model()
    existing = {u.username: u for u in model.objects.filter(username__in=names)}
    fresh = [model(username=n) for n in names if n not in existing]
    for user in fresh:
        user.set_unusable_password()
    model.objects.bulk_create(fresh)
    users = {u.username: u for u in model.objects.filter(username__in=names)}
    if organisers:
        perm = Permission.objects.get(codename="add_session", content_type__app_label="markets")
        for name in organisers:
            users[name].user_permissions.add(perm)
        users.update({u.username: u for u in model.objects.filter(username__in=organisers)})
    return users


@dataclass
class Market:
    """A bench session: an organiser, traders and makers, all holding every leg."""

    session_id: str
    legs: list[str]
    organiser: Any
    traders: list[Any]
    makers: list[Any]
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def rfq_and_quote(self, taker=None, maker=None, ttl: int = 86_400) -> tuple[Any, Any]:
        """One RFQ and one quote on it (small sizes, rate 1: nobody runs out)."""
        from markets import services
        from markets.domain import DomainError

        for _ in range(50):  # a loaded session's random holdings: someone may lack the leg asked for
            who = taker or self.rng.choice(self.traders)
            by = maker or self.rng.choice(self.makers)
            give, get = self.rng.sample(self.legs, 2)
            try:
                rfq = services.request_rfq(who, self.session_id, give, get, str(self.rng.randrange(1, 5)))
            except DomainError:
                continue
            try:
                return rfq, services.provide_quote(by, rfq.id, "1", ttl)
            except DomainError:
                services.cancel_rfq(who, rfq.id)
        raise RuntimeError("no taker and maker with the inventory for an RFQ after 50 tries")

    def trade(self) -> None:
        from markets import services

        rfq, quote = self.rfq_and_quote()
        services.accept_quote(rfq.taker.user, quote.id)


def create_market(
    session_id: str, *, participants: int = 50, legs: int = 8, prefix: str = "", units_per_leg: int = 1_000_000
) -> Market:
    """A session opened with `participants` (organiser included): 4 traders for each maker."""
    from bench.eventlog import LEG_NAMES
    from markets import services

    holders = participants - 1
    n_makers = max(1, holders // 5)
    trader_names = [f"{prefix}trader{i:03d}" for i in range(holders - n_makers)]
    maker_names = [f"{prefix}maker{i:03d}" for i in range(n_makers)]
    organiser_name = f"{prefix}org"
    users = make_users([organiser_name, *trader_names, *maker_names], organisers=(organiser_name,))
    symbols = LEG_NAMES[:legs]
    with fast_setup():
        services.create_session(
            users[organiser_name], session_id=session_id, legs=symbols, q=[units_per_leg] * legs, title=session_id
        )
        for name in trader_names:
            services.join_session(users[name], session_id, "trader")
        for name in maker_names:
            services.join_session(users[name], session_id, "maker")
        services.open_session(users[organiser_name], session_id)
    return Market(
        session_id,
        symbols,
        users[organiser_name],
        [users[n] for n in trader_names],
        [users[n] for n in maker_names],
    )


# ---------------------------------------------------------------- timing and figures


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p95_ms": percentile(seconds, 95) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "max_ms": max(seconds) * 1000,
    }


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


@dataclass
class Figure:
    """One line of the table: a measured figure beside the machine's own limit measured in the same run.

    `ratio` is always "how much of the limit we reach": value/limit for rates, limit/value for latencies,
    so 1.0 means as fast as the machine allows and smaller is further from it.
    """

    key: str
    section: str
    name: str
    size: str
    value: float
    unit: str
    limit: float
    limit_name: str
    higher_is_better: bool = True
    goal: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    scale: str = ""  # the size in a few words, for the growth table
    work: float = 0  # how many units of work a latency covers (clients reached), for the growth table

    @property
    def ratio(self) -> float:
        if self.value <= 0 or self.limit <= 0:
            return 0.0
        return self.value / self.limit if self.higher_is_better else self.limit / self.value

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": round(self.ratio, 4)}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    import django
    import numpy

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "django": django.get_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
    }
