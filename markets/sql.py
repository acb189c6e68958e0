"""The market's hand-written SQL for its commands, its projection and the rows they read, beside the
projections; the floor's reads (ticks, holdings, rows and their parties) are in `markets.floor_sql`, on
the plumbing here (`selected`, `instance`, `rows_of`). Nowhere else in `markets` is SQL written by hand
(sessionsite/tests/test_structure.py checks); the event store's own statements are in `ledger.store`, the
fast SQLite readers in `ledger.sqlite`.

Why by hand: these run on every command (reading the session row, the accept's joined row, the invariant
aggregate) or on every replayed trade, where building the ORM query costs ~10x the database's own work.
Each statement is plain SQL that SQLite and PostgreSQL both run unchanged: quoted identifiers, %s
parameters. The fast replay's queries (`HEADS_SQL`...) read a SQLite file through `ledger.sqlite`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model

# ---------------------------------------------------------------- a model row by primary key


@cache
def _plan(model: type[Model], vendor: str) -> tuple[str, list[str], list[tuple[Any, list]]]:
    """`SELECT <every column> FROM <table>` of `model`, the attribute names in that order, and each
    column's converters (the ORM's own)."""
    opts = model._meta
    fields = opts.concrete_fields
    sql = "SELECT {} FROM {}".format(
        ", ".join(connection.ops.quote_name(f.column) for f in fields), connection.ops.quote_name(opts.db_table)
    )
    converters = []
    for f in fields:
        col = f.get_col(opts.db_table)
        converters.append((col, connection.ops.get_db_converters(col) + f.get_db_converters(connection)))
    return sql, [f.attname for f in fields], converters


def selected(model: type[Model]) -> tuple[str, list[str]]:
    """`SELECT <every column> FROM <table>` of `model` (a WHERE to add) and the attribute names in the
    order of its columns: rows to read as they come, each made an instance by `instance` when wanted."""
    sql, names, _ = _plan(model, connection.vendor)
    return sql, names


def instance[M: Model](model: type[M], row: Sequence[Any]) -> M:
    """A row read by `selected(model)`'s statement as the instance a queryset would give (the ORM's
    converters, `from_db`)."""
    _, names, converters = _plan(model, connection.vendor)
    values = []
    for value, (col, funcs) in zip(row, converters, strict=True):
        for func in funcs:
            value = func(value, col, connection)
        values.append(value)
    return model.from_db(connection.alias, names, values)


def get_by_pk[M: Model](model: type[M], pk: Any, *, for_update: bool = False, key_sql: str = "%s") -> M | None:
    """The row `pk` of `model` as the instance `.get()` would return (None if there is none), in one
    prepared statement converted by the ORM's own converters; `for_update` locks it where the database can
    (SQLite's BEGIN IMMEDIATE already holds the lock). `key_sql` finds the key from `pk` (a subquery; a
    tuple `pk` gives its parameters)."""
    select, _ = selected(model)
    sql = f"{select} WHERE {connection.ops.quote_name(model._meta.pk.column)} = {key_sql}"
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(pk) if isinstance(pk, tuple) else [pk])
        row = cursor.fetchone()
    return None if row is None else instance(model, row)


def get_existing[M: Model](model: type[M], pk: Any) -> M:
    """`get_by_pk`, raising the model's DoesNotExist as `.get()` does when there is no such row."""
    if (row := get_by_pk(model, pk)) is None:
        raise model.DoesNotExist(f"no {model._meta.model_name} {pk!r}")
    return row


def rows_of[M: Model](
    model: type[M], where_sql: str, params: Sequence[Any], order_sql: str = "", limit: int | None = None
) -> list[M]:
    """The rows of `model` that `where_sql` (its own columns, quoted; %s parameters) picks, in `order_sql`'s
    order, at most `limit`, as the instances a queryset would give: the ORM's converters, without building
    its query (a push reads a few rows per batch, and building the query cost more than reading them)."""
    select, _ = selected(model)
    sql = f"{select} WHERE {where_sql}" + (f" ORDER BY {order_sql}" if order_sql else "")
    params = list(params)
    if limit is not None:
        sql, params = sql + " LIMIT %s", [*params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [instance(model, row) for row in cursor.fetchall()]


def active_token(key_hash: str):
    """The active API token with this hash, its user read too: two prepared statements, as every API
    request asks (the ORM's query cost more than the accept it guards)."""
    from django.contrib.auth import get_user_model

    from markets.models import ApiToken

    key_sql = '(SELECT "id" FROM "markets_apitoken" WHERE "key_hash" = %s AND "is_active")'
    if (token := get_by_pk(ApiToken, key_hash, key_sql=key_sql)) is not None:
        token.user = get_by_pk(get_user_model(), token.user_id)
    return token


@cache
def _insert_plan(model: type[Model], vendor: str) -> tuple[str, list[Any]]:
    opts = model._meta
    fields = opts.concrete_fields
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(opts.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", list(fields)


def insert(row: Model) -> None:
    """Insert `row` (its primary key set) in one prepared statement, its values prepared by the fields as
    `save()` prepares them: what `objects.create` writes, without building the ORM's query."""
    sql, fields = _insert_plan(type(row), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields])
    row._state.adding, row._state.db = False, connection.alias


@contextmanager
def pipelined() -> Iterator[None]:
    """Statements sent without waiting for each one's answer: on PostgreSQL, psycopg's pipeline mode, so
    a projection's writes go in one round trip (a read inside still gets its rows: it waits for what was
    sent before it). An error in any of them is raised, as Django's error, when the block ends or at that
    read. On SQLite, in-process, there is no round trip to save: the statements run one by one as before.

    Only for plain statements whose outcome is not read back: a write's row count is not known until the
    block ends, so an ORM `save()` (which updates, then inserts if no row changed) must not run in it."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


# ---------------------------------------------------------------- the commands

_PARTICIPANT_SQL = 'SELECT "id" FROM "markets_participant" WHERE "session_id" = %s AND "user_id" = %s'
# What a participant may give: what it holds less what its resting orders reserve (batch auctions; 0 else).
_HOLDING_SQL = 'SELECT "qty" - "reserved" FROM "markets_holding" WHERE "participant_id" = %s AND "leg_index" = %s'


def participant_id(session_id: str, user_id: int) -> int | None:
    """The row id of the user's participation in the session (None: not joined)."""
    with connection.cursor() as cursor:
        cursor.execute(_PARTICIPANT_SQL, [session_id, user_id])
        row = cursor.fetchone()
    return None if row is None else row[0]


def holding(participant: int, leg_index: int) -> int:
    """What a participant may give of one leg, in base units: what it holds less what its resting orders
    reserve (0 before the allocation)."""
    with connection.cursor() as cursor:
        cursor.execute(_HOLDING_SQL, [participant, leg_index])
        row = cursor.fetchone()
    return 0 if row is None else row[0]


_LEG_TOTALS_SQL = (
    'SELECT "leg_index", SUM("qty"), MIN("qty"), SUM(CASE WHEN "qty" < 0 THEN -"qty" ELSE 0 END) '
    'FROM "markets_holding" WHERE "session_id" = %s GROUP BY "leg_index"'
)


def leg_totals(session_id: str) -> dict[int, tuple[int, int, int]]:
    """{leg index: (sum, minimum, shorts) of x[.][k]}: invariants 1 and 2 from one aggregate."""
    with connection.cursor() as cursor:
        cursor.execute(_LEG_TOTALS_SQL, [session_id])
        return {k: (int(total), int(low), int(short)) for k, total, low, short in cursor.fetchall()}


# ---------------------------------------------------------------- bounded shorting (markets.services.margin)

_NEWEST_TICK_SQL = (
    '(SELECT "id" FROM "oracle_tick" WHERE "session_id" = %s AND "symbol" = %s AND "at" <= %s '
    'ORDER BY "at" DESC, "id" DESC LIMIT 1)'
)


def newest_ticks(session_id: str, legs: Sequence[str], at: dt.datetime) -> dict[str, tuple[int, int]]:
    """{leg: (tick id, price)} of each leg's newest tick at or before `at` (later time, then later id, as
    `selectors.prices.newest_ticks`), for the legs that have one: one statement (`selectors.prices.prices_at`:
    the margin rule reads it inside every command that may go short)."""
    when = connection.ops.adapt_datetimefield_value(at)
    subqueries = ", ".join([_NEWEST_TICK_SQL] * len(legs))
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "symbol", "id", "price" FROM "oracle_tick" WHERE "id" IN ({subqueries})',
            [value for leg in legs for value in (session_id, leg, when)],
        )
        return {symbol: (tick, price) for symbol, tick, price in cursor.fetchall()}


_ROWS_OF_SQL = (  # the participants first (their unique index), then their holdings (by participant)
    'SELECT p."user_id", h."qty" FROM "markets_holding" h JOIN "markets_participant" p ON p."id" = h."participant_id" '
    'WHERE h."participant_id" IN (SELECT "id" FROM "markets_participant" WHERE "session_id" = %s AND "user_id" IN ({})) '
    'ORDER BY p."user_id", h."leg_index"'
)


def holding_rows(session_id: str, users: Sequence[int]) -> dict[int, list[int]]:
    """{user id: [x_k in leg order]} of the given users (what they hold, not less reservations)."""
    rows: dict[int, list[int]] = {u: [] for u in users}
    if not users:
        return rows
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_OF_SQL.format(", ".join(["%s"] * len(users))), [session_id, *users])
        for user, qty in cursor.fetchall():
            rows[user].append(qty)
    return rows


_ACCEPTANCE_SQL = (
    'SELECT r."session_id", q."id", q."status", q."expires_at", q."rate", q."maker_id", m."user_id", r."id", r."status", '
    'r."taker_id", t."user_id", r."give_leg", r."get_leg", r."quantity", t."username", t."role", m."username", m."role", '
    't."display_name", m."display_name" '
    'FROM "markets_quote" q JOIN "markets_rfq" r ON r."id" = q."rfq_id" '
    'JOIN "markets_participant" t ON t."id" = r."taker_id" JOIN "markets_participant" m ON m."id" = q."maker_id" '
    'WHERE q."id" = %s'
)


_SESSION_OF_QUOTE_SQL = (
    '(SELECT r."session_id" FROM "markets_quote" q JOIN "markets_rfq" r ON r."id" = q."rfq_id" WHERE q."id" = %s)'
)


def session_of_quote(quote_id: int, *, for_update: bool = False):
    """The session a quote belongs to, locked as `get_by_pk` locks: one statement, not a lookup and then
    the lock."""
    from markets.models import Session

    return get_by_pk(Session, quote_id, for_update=for_update, key_sql=_SESSION_OF_QUOTE_SQL)


def acceptance_row(quote_id: int) -> tuple | None:
    """The quote, its RFQ and both parties in one row (see services.trading._Acceptance for the columns),
    the quote's expiry read by the ORM's own converters (an aware datetime on every database)."""
    from markets.models import Quote

    with connection.cursor() as cursor:
        cursor.execute(_ACCEPTANCE_SQL, [quote_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return (*row[:3], _converted(Quote, "expires_at", row[3]), *row[4:])


@cache
def _column(model: type[Model], name: str, vendor: str) -> tuple[Any, list]:
    field = model._meta.get_field(name)
    col = field.get_col(model._meta.db_table)
    return col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)


def _converted(model: type[Model], name: str, value: Any) -> Any:
    """A raw column value as the ORM reads `model.name`."""
    col, funcs = _column(model, name, connection.vendor)
    for func in funcs:
        value = func(value, col, connection)
    return value


_TWO_ROWS_SQL = (
    'SELECT "participant_id", "qty" - "reserved" FROM "markets_holding" WHERE "participant_id" IN (%s, %s) '
    'ORDER BY "participant_id", "leg_index"'
)


def two_holdings(a: int, b: int) -> tuple[list[int], list[int]]:
    """Two participants' holdings, in leg order, in one statement: what each may give (less reservations)."""
    rows: dict[int, list[int]] = {a: [], b: []}
    with connection.cursor() as cursor:
        cursor.execute(_TWO_ROWS_SQL, [a, b])
        for participant_id, qty in cursor.fetchall():
            rows[participant_id].append(qty)
    return rows[a], rows[b]


def next_id(model: type[Model]) -> int:
    """The id of a new RFQ, quote or trade, taken before its event is written (the event names it).

    PostgreSQL: the table's own sequence (migration 0005), so two sessions' writers never take the same
    id. SQLite: MAX(id) + 1, safe under its one writer at a time (BEGIN IMMEDIATE)."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(%s)", [f"{table}_ids"])
            return int(cursor.fetchone()[0])
        cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(table)}")
        (last,) = cursor.fetchone()
    return (last or 0) + 1


def sync_id_sequences() -> None:
    """After rows were written with ids of their own (a bulk load, a restore): PostgreSQL's id sequences
    move past them. Nothing to do on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in ("markets_rfq", "markets_quote", "markets_trade", "markets_order"):
            cursor.execute(
                f"SELECT setval(%s, GREATEST(COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, "
                f"(SELECT last_value FROM {table}_ids) + 1), false)",
                [f"{table}_ids"],
            )


def ping() -> None:
    """The cheapest statement that proves the database answers (/health)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


# ---------------------------------------------------------------- the projection (replay runs these too)


def stamp(session_id: str, version: int, seq: int) -> None:
    """The session row carries the version and seq of the last event applied to it."""
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE "markets_session" SET "version" = %s, "last_seq" = %s WHERE "id" = %s', [version, seq, session_id]
        )


def close_rfq(rfq_id: int, status: str, at: dt.datetime, filled_quote: int | None = None) -> None:
    """Close the RFQ; its filled quote (if any) is marked filled and every other live quote lapses."""
    from markets.models import Quote

    filled, lapsed, live = Quote.Status.FILLED, Quote.Status.LAPSED, Quote.Status.LIVE
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE "markets_rfq" SET "status" = %s, "closed_at" = %s WHERE "id" = %s',
            [status, connection.ops.adapt_datetimefield_value(at), rfq_id],
        )
        cursor.execute(
            'UPDATE "markets_quote" SET "status" = CASE WHEN "id" = %s THEN %s ELSE %s END '
            'WHERE "rfq_id" = %s AND ("id" = %s OR "status" = %s)',
            [filled_quote, filled, lapsed, rfq_id, filled_quote, live],
        )


_BY_USER_SQL = 'SELECT "user_id", "id" FROM "markets_participant" WHERE "session_id" = %s AND "user_id" IN (%s, %s)'
_BY_NAME_SQL = 'SELECT "username", "id" FROM "markets_participant" WHERE "session_id" = %s AND "username" IN (%s, %s)'


def participant_rows(session_id: str, who: Sequence[Any], *, by_name: bool = False) -> dict[Any, int]:
    """{user id (or, for an old log, username): participant row id} for two participants of a session."""
    with connection.cursor() as cursor:
        cursor.execute(_BY_NAME_SQL if by_name else _BY_USER_SQL, [session_id, *who])
        return dict(cursor.fetchall())


_MOVE_SQL = 'UPDATE "markets_holding" SET "qty" = "qty" + %s WHERE "participant_id" = %s AND "leg_index" = %s'
_TRADE_SQL = (
    'INSERT INTO "markets_trade" ("id", "session_id", "rfq_id", "quote_id", "taker_id", "maker_id", "give_leg", '
    '"get_leg", "give_qty", "get_qty", "rate", "executed_at", "seq") '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def move_holdings(moves: Iterable[tuple[int, int, int]]) -> None:
    """(delta, participant row, leg index) for each holding a trade changes."""
    with connection.cursor() as cursor:
        cursor.executemany(_MOVE_SQL, list(moves))


def insert_trade(row: Sequence[Any]) -> None:
    """The Trade row, its 13 columns in the order of _TRADE_SQL (executed_at a datetime)."""
    values = list(row)
    values[11] = connection.ops.adapt_datetimefield_value(values[11])
    with connection.cursor() as cursor:
        cursor.execute(_TRADE_SQL, values)


# ---------------------------------------------------------------- fast replay of a SQLite file (markets.fastreplay)

# The whole log's holdings events: a few heads, and the trades through the type index (in rowid order,
# so the table is read front to back). `conn` is a raw sqlite3 connection (ledger.sqlite.connect).
HEADS_SQL = (
    "SELECT stream, version, type, payload FROM ledger_event"
    " WHERE type IN ('SessionCreated', 'InitialAllocationAssigned') ORDER BY stream, version"
)
TRADES_SQL = (
    "SELECT stream, version, payload FROM ledger_event"
    " WHERE type IN ('TradeExecuted', 'BatchCleared', 'AutoDeleveraged', 'CorporateActionApplied')"
)
TRADES_RANGE_SQL = TRADES_SQL + " AND seq BETWEEN ? AND ?"
SEQ_RANGE_SQL = "SELECT MIN(seq), MAX(seq) FROM ledger_event"


def holdings_heads(conn) -> Iterable[tuple[str, int, str, str]]:
    """(stream, version, type, payload) of every SessionCreated and InitialAllocationAssigned."""
    return conn.execute(HEADS_SQL)


def trade_rows(conn, low: int | None = None, high: int | None = None) -> Iterable[tuple[str, int, str]]:
    """(stream, version, payload) of every TradeExecuted, BatchCleared and AutoDeleveraged (what moves
    holdings after the allocation), or of those with seq in low..high."""
    return conn.execute(TRADES_SQL) if low is None else conn.execute(TRADES_RANGE_SQL, (low, high))


def seq_range(conn) -> tuple[int | None, int | None]:
    return conn.execute(SEQ_RANGE_SQL).fetchone()


# ---------------------------------------------------------------- a socket's connect


def participant_of(session_id: str, user_id: int):
    """The user's Participant row in the session, or None: what a socket's connect reads (prepared)."""
    from markets.models import Participant

    key = '(SELECT "id" FROM "markets_participant" WHERE "session_id" = %s AND "user_id" = %s)'
    return get_by_pk(Participant, (session_id, user_id), key_sql=key)
