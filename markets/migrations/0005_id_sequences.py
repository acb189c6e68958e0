"""PostgreSQL only: RFQ, quote and trade ids come from sequences, so writers to different sessions (each
holding only its own session's lock) never pick the same id. SQLite keeps MAX(id) + 1: it has one writer
at a time. See markets/sql.py (`next_id`, `sync_id_sequences`)."""

from django.db import migrations

TABLES = ("markets_rfq", "markets_quote", "markets_trade")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {table}_ids OWNED BY {table}.id", None)
        schema_editor.execute(
            f"SELECT setval('{table}_ids', COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)", None
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"DROP SEQUENCE IF EXISTS {table}_ids", None)


class Migration(migrations.Migration):
    dependencies = [("markets", "0004_visibility")]
    operations = [migrations.RunPython(create, drop)]
