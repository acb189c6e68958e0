"""Access state for getting back in: which invite link each guest joined by, and each guest's personal
rejoin link. Rows of their own, like invites (`markets.models.Invite`) and API tokens: they decide who
may sign in as whom, never what anyone holds, so no event records them and replay neither builds nor
checks them. Only `markets.services.invites` and `markets.services.rejoin` write them, under their
session's lock. Imported by `markets.models`, so `from markets.models import RejoinLink` works."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class InviteUse(models.Model):
    """A guest who joined by an invite link: the account it made and the link it came through. The
    returning browser's "Continue as" is offered only through that same link (while it is not revoked),
    and only guests with such a row get a rejoin link (bots and accounts the organiser added never do)."""

    invite = models.ForeignKey("markets.Invite", on_delete=models.CASCADE, related_name="joins")
    participant = models.OneToOneField("markets.Participant", on_delete=models.CASCADE, related_name="invite_use")
    used_at = models.DateTimeField()

    class Meta:
        verbose_name = "invite use"

    def __str__(self) -> str:
        return f"{self.participant_id} joined by invite {self.invite_id}"


class RejoinLink(models.Model):
    """A participant's personal way back in from any browser: `/rejoin/<signed token_id>` signs that
    guest in and opens their floor, at any phase. One live link per participant at a time: revoking it
    (the organiser, or the participant) kills it at once and makes the next one."""

    session = models.ForeignKey("markets.Session", on_delete=models.CASCADE, related_name="rejoin_links")
    participant = models.ForeignKey("markets.Participant", on_delete=models.CASCADE, related_name="rejoin_links")
    token_id = models.CharField(max_length=32, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who made it (empty: made when the guest joined)",
    )
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["session", "participant", "-created_at", "-id"]
        constraints = [
            # However two revocations race, a participant never has two live links.
            models.UniqueConstraint(
                fields=["participant"], condition=models.Q(revoked_at__isnull=True), name="markets_rejoin_one_live"
            ),
        ]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "live"
        return f"rejoin link of participant {self.participant_id} in {self.session_id} ({state})"
