"""What following a PostgreSQL table takes that SQLite does not: gap-safe reading, and being woken by NOTIFY.

SQLite has one writer at a time, so rows become visible in the order of their keys. PostgreSQL hands out a
sequence value when a row is inserted, and transactions commit in any order: after reading keys 1..7 with
5 missing, 5 may still arrive (a transaction in flight) or never (it rolled back). A follower that moved
its cursor to 7 would skip 5 forever. So a follower remembers each gap with a horizon: a transaction id
above that of every transaction that could still fill it. It reads the gap again until it is filled, or
until every transaction below the horizon has ended (a later snapshot's xmin reached it): then nothing can
fill it any more.

The horizon is the follower's own transaction id, taken after the snapshot of the read that first saw the
gap. That is sound because every appending transaction has its id before it takes a sequence value (the
key columns' defaults ask for it first: migrations ledger 0003 and oracle 0004): a key below a visible
one was handed out before that read, to a transaction whose id was given out earlier still. The
snapshot's own numbers are not enough: its xip lists only the ids below its xmax (one past the newest
*completed* transaction), and a transaction in flight may have a larger id. The follower takes an id
only when a read finds a new gap, which on a quiet or a serial database is never.

`gap_safe` is the pure rule (tested with hypothesis against a model of PostgreSQL's snapshots); `follow`
and `Listener` are the PostgreSQL side. `grants_sql` and its helpers give the app a role that may only
read and append to the log (`manage.py grant_app_role`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Channels the NOTIFY triggers (ledger and oracle migrations) signal on a commit that wrote rows.
LEDGER_CHANNEL, TICKS_CHANNEL = CHANNELS = ("sc_ledger", "sc_ticks")


@dataclass(frozen=True)
class Position:
    """How far a follower has read: every key up to `last` was delivered, except the `gaps`, each with the
    horizon of the read that first saw it missing."""

    last: int
    gaps: dict[int, int] = field(default_factory=dict)


def gap_safe(position: Position, keys: Iterable[int], xmin: int | None, horizon: int | None) -> Position:
    """Where a follower stands after a read returned `keys` (the keys above `last` and the gaps that are
    now visible), under a snapshot whose oldest transaction in flight is `xmin`, with `horizon` above the
    id of every transaction that could fill a gap this read found. None means a database whose rows
    become visible in key order (SQLite): nothing can fill a gap there, so none is kept."""
    keys = set(keys)
    gaps = {k: seen for k, seen in position.gaps.items() if k not in keys}
    top = max(keys | {position.last})
    if xmin is None or horizon is None:
        return Position(top)
    for k in range(position.last + 1, top):
        if k not in keys:
            gaps.setdefault(k, horizon)
    # A gap no transaction can fill any more: all that were in flight when it was seen have ended.
    return Position(top, {k: seen for k, seen in gaps.items() if xmin < seen})


class Listener:
    """One long-lived connection per process that LISTENs on `CHANNELS` and calls `wake(channel)` on every
    notification (delivered at commit), so the follower reads at once instead of at its next poll; `wake()`
    (every source) once connected, for what committed while it was not listening."""

    def __init__(self, settings_dict: dict, wake: Callable[..., None]) -> None:
        self.settings_dict = settings_dict
        self.wake = wake
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ledger-listen", daemon=True)
        self.heard = 0

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _connect(self):
        import psycopg

        s = self.settings_dict
        options = {k: v for k, v in s.get("OPTIONS", {}).items() if k not in ("pool", "isolation_level")}
        conn = psycopg.connect(
            dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"] or None,
            port=s["PORT"] or None, autocommit=True, **options,
        )  # fmt: skip
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        return conn

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                with self._connect() as conn:
                    self.wake()  # anything committed while (re)connecting is read now
                    while not self.stopped.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self.heard += 1
                            self.wake(notice.channel)
            except Exception as exc:  # the database went away: try again, the polls go on meanwhile
                log.warning("ledger listener lost its connection (%s); reconnecting", exc)
                self.stopped.wait(1.0)


def follow(rows_after: Callable[[Position], list], key: Callable[[object], int], position: Position):
    """Read what is new after `position` and say where the follower then stands: (rows, position).

    `rows_after(position)` reads the rows with keys above `position.last` or in `position.gaps` (ordered by
    key). On PostgreSQL, a follower with no gap first reads in one statement: when the keys it finds follow
    on from `last` without a hole (nothing, most often), no transaction can fill anything below them and
    the snapshot is not needed. Otherwise the snapshot, the read and (when it found a new gap) the horizon
    are one REPEATABLE READ transaction, which reads again. One statement instead of five is what a busy
    machine notices: each is a wait for the database's process to be scheduled.
    """
    if not position.gaps and _vendor() == "postgresql":
        rows = rows_after(position)
        keys = [key(r) for r in rows]
        if keys == list(range(position.last + 1, position.last + 1 + len(keys))):
            return rows, Position(keys[-1] if keys else position.last)
    rows, xmin, horizon = _read(lambda: rows_after(position), lambda keys: new_gaps(position, keys), key)
    return rows, gap_safe(position, (key(r) for r in rows), xmin, horizon)


def begin(newest: Callable[[], int | None], keys_above: Callable[[int], list[int]], window: int = 1000) -> Position:
    """Where a follower starts: past the newest row (`newest()`, its key), keeping as gaps the keys below
    it, `window` of them at most, that are missing (`keys_above(k)` gives the keys above k): on
    PostgreSQL a transaction still in flight may have drawn one before a later key committed, and its row
    is new to the follower when it commits. The gaps no transaction can fill age out at the next read."""

    def read() -> list[int]:
        top = newest() or 0
        return keys_above(max(top - window, 0)) if top else []

    def floor(keys: list[int]) -> Position:  # the newest key is among them: the window is below it
        return Position(max(max(keys, default=0) - window, 0))

    keys, xmin, horizon = _read(read, lambda keys: new_gaps(floor(keys), keys), int)
    return gap_safe(floor(keys), keys, xmin, horizon)


def _vendor() -> str:
    from django.db import connection

    return connection.vendor


def _read(read: Callable[[], list], gaps_in: Callable[[list[int]], bool], key: Callable[[object], int]):
    """(rows, xmin, horizon): `read()`, and on PostgreSQL the oldest transaction in flight in its snapshot
    and, when `gaps_in` its keys, the horizon of those gaps (None and None on SQLite)."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        return read(), None, None
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")  # takes the snapshot
        (xmin,) = cursor.fetchone()
        rows = read()
        horizon = xmin
        if gaps_in([key(r) for r in rows]):
            # An id of our own, given after the snapshot: above every id handed out before it. The
            # transaction writes nothing, so its commit need not wait for the disk.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            (horizon,) = cursor.fetchone()
    return rows, int(xmin), int(horizon)


def new_gaps(position: Position, keys: list[int]) -> bool:
    """Whether a read that returned `keys` skipped a key above `position.last`."""
    above = sorted(k for k in keys if k > position.last)
    return bool(above) and above[-1] - position.last != len(above)


ROLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def role_standing(role: str, table: str) -> tuple[bool, bool] | None:
    """Whether `role` is above the rules (a superuser, or bypasses row security) and whether it owns (or is
    a member of the owner of) `table`; None when there is no such role, or no such table here."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.rolsuper OR r.rolbypassrls, pg_has_role(r.rolname, t.tableowner, 'USAGE') "
            "FROM pg_roles r, pg_tables t WHERE r.rolname = %s AND t.schemaname = current_schema() "
            "AND t.tablename = %s",
            [role, table],
        )
        found = cursor.fetchone()
    return None if found is None else (bool(found[0]), bool(found[1]))


def grant_app_role(role: str, append_only: set[str], read_only: set[str]) -> list[str]:
    """Give `role` exactly the app's rights on every table of the current schema (`grants_sql`), in one
    transaction; returns the tables."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
        tables = connection.introspection.table_names(cursor)
        for statement in grants_sql(role, schema, tables, append_only, read_only):
            cursor.execute(statement)
    return tables


def grants_sql(role: str, schema: str, tables: list[str], append_only: set[str], read_only: set[str]) -> list[str]:
    """The statements that give `role` what the app needs and no more: rows of the read models and the
    accounts to write, the `append_only` tables (the event log) to read and insert into only, the
    `read_only` ones (the migrations record) to read, the sequences to draw from. The role owns nothing,
    so it cannot alter, truncate or disable a trigger on any of them. Run by the owner, again after each
    migration (it revokes first, so the result is the same whatever was granted before)."""
    import re

    if not re.match(ROLE_NAME, role):
        raise ValueError(f"{role!r} is not a plain role name (letters, digits and _)")
    who = _quoted(role)
    statements = []
    for table in sorted(tables):
        name = _quoted(table)
        statements.append(f"REVOKE ALL ON {name} FROM {who}")
        if table in read_only:
            rights = "SELECT"
        elif table in append_only:
            rights = "SELECT, INSERT"
        else:
            rights = "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {rights} ON {name} TO {who}")
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_quoted(schema)} TO {who}")
    return statements


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
