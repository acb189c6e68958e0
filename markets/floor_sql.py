"""The floor's hand-written reads: a session's ticks (every leg at once), its holdings, its trade count,
the rows a page or a push shows (RFQs, quotes, trades) and their parties. Every page and every push reads
them, where building the ORM's query cost more than the database's work; on PostgreSQL each statement is
also a wait for the database, so a push reads the session's participants once (`Parties`). The rows come
as the ORM would give them (`markets.sql`'s `rows_of` and `instance`: its own converters). Plain SQL that
SQLite and PostgreSQL both run: quoted identifiers, %s parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence, Sized
from typing import Any

from django.db import connection
from django.db.models import Model

from markets.sql import instance, rows_of, selected

# ---------------------------------------------------------------- a session's ticks, every leg at once
# Each leg's newest (or first) ticks by the `oracle_tick_lookup` index, the legs joined by UNION ALL
# around subqueries (Django will not build a compound of sliced queries for SQLite; both engines run
# this). `part` tags each arm: our own integers, never input.


def _tick_arm(part: int, columns: str, order: str, limit: int, *, since: bool = False, until: bool = False) -> str:
    bounds = (" AND at >= %s" if since else "") + (" AND at <= %s" if until else "")
    return (
        f"SELECT * FROM (SELECT {int(part)} AS part, {columns} FROM oracle_tick"
        f" WHERE session_id = %s AND symbol = %s{bounds} ORDER BY at {order}, id {order} LIMIT {int(limit)})"
        f" AS arm{int(part)}"
    )


def _aware(value: dt.datetime | str) -> dt.datetime:
    """A row's time as an aware UTC datetime (SQLite hands raw SQL its stored text, in UTC)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def last_tick_id(session_id: str) -> int:
    """The id of the session's newest tick (0 before any), by the (session, id) index."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT MAX("id") FROM "oracle_tick" WHERE "session_id" = %s', [session_id])
        return cursor.fetchone()[0] or 0


def tick_windows(
    session_id: str, legs: Sequence[str], window: int, since: dt.datetime, until: dt.datetime | None
) -> list[tuple[int, bool, dt.datetime, int, int]]:
    """(leg index, is-first, at, tick id, price): each leg's newest `window` ticks up to `until`, and
    its first tick since `since`, in one statement."""
    if not legs:
        return []
    adapt = connection.ops.adapt_datetimefield_value
    arms, params = [], []
    for k, leg in enumerate(legs):
        arms.append(_tick_arm(2 * k, "at, id, price", "DESC", window, until=until is not None))
        params += [session_id, leg] + ([adapt(until)] if until is not None else [])
        arms.append(_tick_arm(2 * k + 1, "at, id, price", "ASC", 1, since=True, until=until is not None))
        params += [session_id, leg, adapt(since)] + ([adapt(until)] if until is not None else [])
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(arms), params)
        rows = cursor.fetchall()
    return [(part // 2, bool(part % 2), _aware(at), tick_id, price) for part, at, tick_id, price in rows]


def latest_tick_prices(session_id: str, legs: Sequence[str]) -> list[tuple[int, int]]:
    """(leg index, price) of each leg's latest tick, for the legs that have one, in one statement."""
    if not legs:
        return []
    arms = [_tick_arm(k, "price", "DESC", 1) for k in range(len(legs))]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(arms), [value for leg in legs for value in (session_id, leg)])
        return cursor.fetchall()


# ---------------------------------------------------------------- holdings and counts

_HOLDINGS_SQL = (
    'SELECT p."username", p."display_name", p."role", p."user_id", h."leg_index", h."qty", h."initial" '
    'FROM "markets_holding" h '
    'JOIN "markets_participant" p ON p."id" = h."participant_id" WHERE h."session_id" = %s '
    'ORDER BY p."username", h."leg_index"'
)


def holdings_of(session_id: str) -> list[tuple[str, str, str, int, int, int, int]]:
    """(username, display name, role, user id, leg index, qty, initial) of every holding of the session,
    by username and leg."""
    with connection.cursor() as cursor:
        cursor.execute(_HOLDINGS_SQL, [session_id])
        return cursor.fetchall()


def holdings_by_name(session_id: str) -> dict[str, list[int]]:
    """{username: [x_k ...]} in leg order, from `holdings_of`'s one statement."""
    matrix: dict[str, list[int]] = {}
    for username, _, _, _, _, qty, _ in holdings_of(session_id):
        matrix.setdefault(username, []).append(qty)
    return matrix


def trade_count(session_id: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute('SELECT COUNT(*) FROM "markets_trade" WHERE "session_id" = %s', [session_id])
        return cursor.fetchone()[0]


# ---------------------------------------------------------------- the rows a floor shows, and their parties


class Parties:
    """A session's participants, read at most once, in one statement, when first asked for: the names its
    events are told with (`names`) and the parties of the rows a page or a push shows (`attach`, what
    `select_related` gives), without a statement for each kind of row."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._rows: dict[int, tuple] | None = None
        self._made: dict[int, Any] = {}

    def _read(self) -> dict[int, tuple]:
        if self._rows is None:
            from markets.models import Participant

            select, names = selected(Participant)
            with connection.cursor() as cursor:
                cursor.execute(f'{select} WHERE "session_id" = %s', [self.session_id])
                key = names.index("id")
                self._rows = {row[key]: row for row in cursor.fetchall()}
        return self._rows

    def names(self) -> dict[int, str]:
        """{user id: the name people see (the display name joined with)}."""
        from markets.models import Participant

        _, names = selected(Participant)
        user, name = names.index("user_id"), names.index("display_name")
        return {row[user]: row[name] for row in self._read().values()}

    def liquidated(self) -> set[int]:
        """The user ids of those liquidated in the session (bounded shorting), from the same read."""
        from markets.models import Participant

        _, names = selected(Participant)
        user, at = names.index("user_id"), names.index("liquidated_at")
        return {row[user] for row in self._read().values() if row[at] is not None}

    def attach[M: Model](self, rows: list[M], *fields: str) -> list[M]:
        """`rows` (of this session) with the participants their `fields` (taker, maker) name attached."""
        for row in rows:
            for f in fields:
                setattr(row, f, self._party(getattr(row, f"{f}_id")))
        return rows

    def _party(self, participant_id: int):
        from markets.models import Participant

        if participant_id not in self._made:
            self._made[participant_id] = instance(Participant, self._read()[participant_id])
        return self._made[participant_id]


def _placeholders(values: Sized) -> str:
    """`%s, %s, ...` for an IN list of `values` (never empty: the callers skip an empty list)."""
    return ", ".join(["%s"] * len(values))


def open_rfqs(session_id: str, parties: Parties, only: Iterable[int] | None = None) -> list:
    """The session's open RFQs (those of `only`, when it names some), newest first, their takers attached."""
    from markets.models import RFQ

    where, params = '"session_id" = %s AND "status" = %s', [session_id, RFQ.Status.OPEN]
    if only is not None:
        only = list(only)
        if not only:
            return []
        where, params = f'{where} AND "id" IN ({_placeholders(only)})', params + only
    return parties.attach(rows_of(RFQ, where, params, '"id" DESC'), "taker")


def live_quotes(rfq_ids: list[int], parties: Parties) -> list:
    """The live quotes of these RFQs, best rate first, their makers attached."""
    from markets.models import Quote

    if not rfq_ids:
        return []
    where = f'"rfq_id" IN ({_placeholders(rfq_ids)}) AND "status" = %s'
    return parties.attach(rows_of(Quote, where, [*rfq_ids, Quote.Status.LIVE], '"rate", "id"'), "maker")


def trades(
    parties: Parties, *, ids: Sequence[int] | None = None, limit: int | None = None, before: int | None = None
) -> list:
    """The session's trades (those of `ids`; else the newest `limit`, older than trade `before`), newest
    first, both parties attached."""
    from markets.models import Trade

    if ids is not None:
        if not ids:
            return []
        where, params = f'"session_id" = %s AND "id" IN ({_placeholders(ids)})', [parties.session_id, *ids]
    else:
        where, params = '"session_id" = %s', [parties.session_id]
        if before is not None:
            where, params = f'{where} AND "id" < %s', [*params, before]
    return parties.attach(rows_of(Trade, where, params, '"id" DESC', limit=limit), "taker", "maker")
