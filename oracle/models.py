"""Price ticks. Not ledger events (they would swamp it); the ticks used at settlement are named
in the SessionSettled event, so the fixing stays auditable."""

from __future__ import annotations

from django.db import models


class Tick(models.Model):
    id = models.BigAutoField(primary_key=True)
    session_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=32)
    at = models.DateTimeField()
    price = models.BigIntegerField(help_text="Price in base units of 10**-6")
    source = models.CharField(
        max_length=64, help_text="the feed's name: run_oracle --source, sim:<seed>, replay:<file>"
    )
    volume = models.BigIntegerField(
        null=True, blank=True, help_text="Units traded at this price in base units of 10**-6 (none: the feed gave none)"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session_id", "symbol", "at"], name="oracle_tick_lookup"),
            models.Index(fields=["session_id", "id"], name="oracle_tick_by_id"),  # a floor's position
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.price} @ {self.at:%H:%M:%S}"
