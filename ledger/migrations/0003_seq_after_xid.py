"""PostgreSQL only: an event's seq is drawn only after its transaction has an id.

A follower of the log judges whether a gap in the seqs can still be filled by the transactions in flight
(ledger/postgres.py); that needs every transaction that holds a seq to have had its id first. A plain
identity column draws the seq while building the row, before the row's transaction takes its id. The
column's default becomes a function that asks for the id (pg_current_xact_id, free once there is one) and
then draws from the column's sequence: true of every writer, the app's or anyone's."""

from django.db import migrations

TABLE, COLUMN, FUNCTION = "ledger_event", "seq", "ledger_event_next_seq"
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
    dependencies = [("ledger", "0002_notify")]
    operations = [migrations.RunPython(forward, backward)]
