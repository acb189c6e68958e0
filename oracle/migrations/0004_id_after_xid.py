"""PostgreSQL only: a tick's id is drawn only after its transaction has an id.

The web processes follow the ticks by id and judge whether a gap in the ids can still be filled by the
transactions in flight; that needs every transaction that holds a tick id to have had its transaction id
first. A plain identity column draws the tick id while building the row, before the transaction has one. The
column's default becomes a function that asks for the id (pg_current_xact_id, free once there is one) and
then draws from the column's sequence: true of every writer, the app's or anyone's."""

from django.db import migrations

TABLE, COLUMN, FUNCTION = "oracle_tick", "id", "oracle_tick_next_id"
FORWARD = [
    f"ALTER TABLE {TABLE} ALTER COLUMN {COLUMN} DROP IDENTITY IF EXISTS",
    f"CREATE SEQUENCE IF NOT EXISTS {TABLE}_{COLUMN}_seq OWNED BY {TABLE}.{COLUMN}",
    f"SELECT setval('{TABLE}_{COLUMN}_seq', GREATEST((SELECT MAX({COLUMN}) FROM {TABLE}), 1), "
    f"EXISTS (SELECT 1 FROM {TABLE}))",
    f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS bigint AS $$
        BEGIN PERFORM pg_current_xact_id(); RETURN nextval('{TABLE}_{COLUMN}_seq'); END;
        $$ LANGUAGE plpgsql VOLATILE""",
    f"ALTER TABLE {TABLE} ALTER COLUMN {COLUMN} SET DEFAULT {FUNCTION}()",
]
BACKWARD = [
    f"ALTER TABLE {TABLE} ALTER COLUMN {COLUMN} SET DEFAULT nextval('{TABLE}_{COLUMN}_seq')",
    f"DROP FUNCTION IF EXISTS {FUNCTION}()",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql, None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in BACKWARD:
            schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    dependencies = [("oracle", "0003_notify")]
    operations = [migrations.RunPython(forward, backward)]
