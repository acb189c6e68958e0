"""Invites: links that let people into a session before it opens (access state, not market state:
no event records them; see markets.models.Invite)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0006_monitor"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Invite",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=[("trader", "Trader"), ("maker", "Market maker")], max_length=16)),
                ("token_id", models.CharField(editable=False, max_length=32, unique=True)),
                (
                    "name",
                    models.CharField(blank=True, help_text="Personal link: the one name it joins as", max_length=40),
                ),
                (
                    "batch",
                    models.CharField(
                        blank=True, db_index=True, help_text="Personal links pasted together", max_length=16
                    ),
                ),
                ("max_uses", models.PositiveIntegerField()),
                ("uses", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField()),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "session",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="invites", to="markets.session"
                    ),
                ),
            ],
            options={
                "ordering": ["session", "-created_at", "-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("uses__lte", models.F("max_uses"))), name="markets_invite_uses"
                    ),
                    models.CheckConstraint(condition=models.Q(("max_uses__gte", 1)), name="markets_invite_max_uses"),
                ],
            },
        ),
    ]
