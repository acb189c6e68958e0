"""Corporate actions' read model: each action a session's organiser scheduled, and once its cut came, what
applying it did. Projected from CorporateActionScheduled and CorporateActionApplied by the one projection
(`markets.projections_actions`); imported by `markets.models`. Actions are numbered within their session
(the events name them so), since the row id is not part of the log."""

from __future__ import annotations

from django.db import models


class CorporateAction(models.Model):
    class Kind(models.TextChoices):
        SPLIT = "split", "Split"
        DIVIDEND = "dividend", "Dividend"
        MERGER = "merger", "Merger"
        RENAME = "rename", "Rename"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        APPLIED = "applied", "Applied"

    session = models.ForeignKey("markets.Session", on_delete=models.CASCADE, related_name="actions")
    number = models.PositiveIntegerField(help_text="1, 2, ... within the session: what its events name")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    leg = models.CharField(max_length=32)
    effective_at = models.DateTimeField(help_text="The cut: the scheduler applies it at this instant")
    params = models.JSONField(help_text="ratio, amount, into, cash, to: as scheduled, exact text")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    scheduled_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="What applying it did (CorporateActionApplied)")

    class Meta:
        ordering = ["session", "number"]
        constraints = [models.UniqueConstraint(fields=["session", "number"], name="markets_action_unique")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.leg} in {self.session_id} at {self.effective_at:%Y-%m-%d %H:%M:%S}"
