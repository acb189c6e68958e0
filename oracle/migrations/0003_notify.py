"""PostgreSQL only: stored ticks wake the followers of the web processes (LISTEN sc_ticks) at once."""

from django.db import migrations

NOTIFY = [
    """CREATE OR REPLACE FUNCTION oracle_tick_notify() RETURNS trigger AS $$
       BEGIN PERFORM pg_notify('sc_ticks', ''); RETURN NULL; END;
       $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER oracle_tick_notify AFTER INSERT ON oracle_tick
       FOR EACH STATEMENT EXECUTE FUNCTION oracle_tick_notify();""",
]
DROP = ["DROP TRIGGER IF EXISTS oracle_tick_notify ON oracle_tick;", "DROP FUNCTION IF EXISTS oracle_tick_notify();"]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in NOTIFY:
            schema_editor.execute(sql, None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP:
            schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    dependencies = [("oracle", "0002_contract_edges")]
    operations = [migrations.RunPython(create, drop)]
