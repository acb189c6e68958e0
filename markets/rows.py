"""Reading a model row by primary key without building an ORM query.

Every command reads its session row first. Django compiles a `.get()` afresh each time (~250 µs here),
ten times SQLite's own work; this sends one prepared statement and converts the values with the same
converters the ORM uses, so the instance is the one `.get()` would return.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Model


@cache
def _plan(model: type[Model], vendor: str) -> tuple[str, list[str], list[tuple[Any, list]]]:
    opts = model._meta
    fields = opts.concrete_fields
    sql = "SELECT {} FROM {} WHERE {} = %s".format(
        ", ".join(connection.ops.quote_name(f.column) for f in fields),
        connection.ops.quote_name(opts.db_table),
        connection.ops.quote_name(opts.pk.column),
    )
    converters = []
    for f in fields:
        col = f.get_col(opts.db_table)
        converters.append((col, connection.ops.get_db_converters(col) + f.get_db_converters(connection)))
    return sql, [f.attname for f in fields], converters


def get_by_pk[M: Model](model: type[M], pk: Any, *, for_update: bool = False) -> M | None:
    """The row `pk` of `model` as a model instance (None if there is none), in one plain statement.

    `for_update` locks the row where the database can (SQLite's BEGIN IMMEDIATE already holds the lock).
    """
    sql, names, converters = _plan(model, connection.vendor)
    if for_update and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (col, funcs) in zip(row, converters, strict=True):
        for func in funcs:
            value = func(value, col, connection)
        values.append(value)
    return model.from_db(connection.alias, names, values)
