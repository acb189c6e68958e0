"""PostgreSQL only: a committed append wakes the followers of other processes (LISTEN sc_ledger) at once,
instead of at their next poll. NOTIFY is delivered at commit, and once per transaction and channel."""

from django.db import migrations

NOTIFY = [
    """CREATE OR REPLACE FUNCTION ledger_event_notify() RETURNS trigger AS $$
       BEGIN PERFORM pg_notify('sc_ledger', ''); RETURN NULL; END;
       $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER ledger_event_notify AFTER INSERT ON ledger_event
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_event_notify();""",
]
DROP = ["DROP TRIGGER IF EXISTS ledger_event_notify ON ledger_event;", "DROP FUNCTION IF EXISTS ledger_event_notify();"]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in NOTIFY:
            schema_editor.execute(sql, None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
