"""The event store's one table. Rows are written once; the database refuses UPDATE and DELETE."""

from __future__ import annotations

import json
from typing import Any

from django.db import models


class Event(models.Model):
    """One state transition. `seq` is global order; (stream, version) is per-stream order."""

    seq = models.BigAutoField(primary_key=True)
    stream = models.CharField(max_length=64, db_index=True)  # with seq (its rowid): a stream in seq order
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=64, db_index=True)
    # Canonical JSON text (sorted keys, no spaces): hashed exactly as stored.
    payload = models.TextField()
    at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "version"], name="ledger_event_stream_version"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.stream} v{self.version} {self.type}"

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)
