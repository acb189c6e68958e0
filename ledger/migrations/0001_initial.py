from django.db import migrations, models

# The database itself refuses to change history, whatever client connects.
SQLITE_TRIGGERS = [
    """CREATE TRIGGER ledger_event_no_update BEFORE UPDATE ON ledger_event
       BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER ledger_event_no_delete BEFORE DELETE ON ledger_event
       BEGIN SELECT RAISE(ABORT, 'ledger events are append-only: DELETE refused'); END;""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS ledger_event_no_update;", "DROP TRIGGER IF EXISTS ledger_event_no_delete;"]

# The refusal is an integrity violation (SQLSTATE 23000) on both engines, so callers see one error type
# (Django's IntegrityError) whichever database refused.
POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION ledger_event_refuse() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'ledger events are append-only: % refused', TG_OP
             USING ERRCODE = 'integrity_constraint_violation'; END;
       $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER ledger_event_no_change BEFORE UPDATE OR DELETE ON ledger_event
       FOR EACH ROW EXECUTE FUNCTION ledger_event_refuse();""",
    """CREATE TRIGGER ledger_event_no_truncate BEFORE TRUNCATE ON ledger_event
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_event_refuse();""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS ledger_event_no_change ON ledger_event;",
    "DROP TRIGGER IF EXISTS ledger_event_no_truncate ON ledger_event;",
    "DROP FUNCTION IF EXISTS ledger_event_refuse();",
]


def trigger_sql(vendor: str) -> tuple[list[str], list[str]]:
    """(the statements that install the append-only triggers, those that drop them) for an engine."""
    return (SQLITE_TRIGGERS, SQLITE_DROP) if vendor == "sqlite" else (POSTGRES_TRIGGERS, POSTGRES_DROP)


def create_triggers(apps, schema_editor):
    statements = SQLITE_TRIGGERS if schema_editor.connection.vendor == "sqlite" else POSTGRES_TRIGGERS
    for sql in statements:
        schema_editor.execute(sql, None)  # no params: the % of RAISE is not a placeholder


def drop_triggers(apps, schema_editor):
    statements = SQLITE_DROP if schema_editor.connection.vendor == "sqlite" else POSTGRES_DROP
    for sql in statements:
        schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.CreateModel(
            name="Event",
            fields=[
                ("seq", models.BigAutoField(primary_key=True, serialize=False)),
                ("stream", models.CharField(db_index=True, max_length=64)),
                ("version", models.PositiveIntegerField()),
                ("type", models.CharField(db_index=True, max_length=64)),
                ("payload", models.TextField()),
                ("at", models.DateTimeField()),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64, unique=True)),
            ],
            options={"ordering": ["seq"]},
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.UniqueConstraint(fields=("stream", "version"), name="ledger_event_stream_version"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
