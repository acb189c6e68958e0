"""The organiser's monitor: a session's pause (projected from TradingPaused / TradingResumed) and the
presence of its participants (operational state, not part of the ledger; see markets.models.Presence)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0005_id_sequences"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="session",
            name="paused_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="session",
            name="pause_reason",
            field=models.CharField(blank=True, max_length=500),
        ),
        migrations.CreateModel(
            name="Presence",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sockets", models.IntegerField(default=0, help_text="Sockets open now (as last counted)")),
                ("last_seen", models.DateTimeField(help_text="Last connect, disconnect or heartbeat")),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="presences", to="markets.session"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("session", "user"), name="markets_presence_unique")],
            },
        ),
    ]
