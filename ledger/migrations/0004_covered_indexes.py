"""The index on `stream` alone goes: the (stream, version) constraint's index finds a stream's events,
and every appended event wrote both. Dropped by name rather than by AlterField, which on SQLite would
rebuild the event table (copying the log and dropping its append-only triggers)."""

from django.db import migrations, models

INDEXES = ["ledger_event_stream_3fa3c9dc", "ledger_event_stream_3fa3c9dc_like"]  # _like: PostgreSQL's


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0003_seq_after_xid"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="event", name="stream", field=models.CharField(max_length=64)),
            ],
            database_operations=[
                migrations.RunSQL(
                    [f'DROP INDEX IF EXISTS "{name}"' for name in INDEXES],
                    reverse_sql=['CREATE INDEX "ledger_event_stream_3fa3c9dc" ON "ledger_event" ("stream")'],
                ),
            ],
        ),
    ]
