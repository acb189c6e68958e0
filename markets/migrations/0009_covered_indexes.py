"""The single-column session indexes of RFQs and trades go: the board's (session, status, id) and the
trades' (session, id) and (session, executed_at) indexes start with the session, and every RFQ and trade
wrote one index more. Dropped by name, not by AlterField (which on SQLite rebuilds both tables)."""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {  # table: its index on session_id alone (PostgreSQL also made a _like one for the varchar)
    "markets_rfq": "markets_rfq_session_id_a0ec117d",
    "markets_trade": "markets_trade_session_id_f1c5f03e",
}


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0008_floor_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related,
                        to="markets.session",
                    ),
                )
                for model, related in (("rfq", "rfqs"), ("trade", "trades"))
            ],
            database_operations=[
                migrations.RunSQL(
                    [f'DROP INDEX IF EXISTS "{name}{suffix}"' for name in INDEXES.values() for suffix in ("", "_like")],
                    reverse_sql=[
                        f'CREATE INDEX "{name}" ON "{table}" ("session_id")' for table, name in INDEXES.items()
                    ],
                ),
            ],
        ),
    ]
