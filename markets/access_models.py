"""Access state: who may come in. Invite links, which of them each guest joined by, and each guest's
personal rejoin link. Rows of their own, like API tokens: they decide who may sign in as whom, never what
anyone holds, so no event records them and replay neither builds nor checks them. Only
`markets.services.invites` and `markets.services.rejoin` write them, under their session's lock.
Imported by `markets.models`, so `from markets.models import Invite` works."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Invite(models.Model):
    """A link that lets people into one session before it opens: an open link for up to `max_uses`
    people, or a personal single-use link with the display name fixed (`name`, made in bulk).

    Access state, not market state (like API tokens): no event records it, and only
    `markets.services.invites` writes it, under its session's lock. The joins themselves are events
    (ParticipantJoined). The link carries `token_id`, signed (`markets.invite_rules`)."""

    class Role(models.TextChoices):
        TRADER = "trader", "Trader"
        MAKER = "maker", "Market maker"

    session = models.ForeignKey("markets.Session", on_delete=models.CASCADE, related_name="invites")
    role = models.CharField(max_length=16, choices=Role.choices)
    token_id = models.CharField(max_length=32, unique=True, editable=False)
    name = models.CharField(max_length=40, blank=True, help_text="Personal link: the one name it joins as")
    batch = models.CharField(max_length=16, blank=True, db_index=True, help_text="Personal links pasted together")
    max_uses = models.PositiveIntegerField()
    uses = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "-created_at", "-id"]
        constraints = [
            # However the joins race, the database never lets a link be used more often than its limit.
            models.CheckConstraint(condition=models.Q(uses__lte=models.F("max_uses")), name="markets_invite_uses"),
            models.CheckConstraint(condition=models.Q(max_uses__gte=1), name="markets_invite_max_uses"),
        ]

    def __str__(self) -> str:
        who = f"for {self.name}" if self.name else f"{self.uses}/{self.max_uses}"
        return f"{self.role} invite to {self.session_id} ({who})"

    @property
    def personal(self) -> bool:
        return bool(self.name)


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


class ApiToken(models.Model):
    """A per-user bearer token for the JSON API. Only its SHA-256 hash and a short prefix are stored:
    the token itself is shown once, when it is made (`markets.tokens.create_token`)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for, e.g. 'laptop script'")
    prefix = models.CharField(
        max_length=16, db_index=True, editable=False, help_text="First characters, to recognise it"
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True, help_text="Untick to revoke the token")
    created_at = models.DateTimeField(editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user", "-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an `Idempotency-Key`, replayed to retries with the same key.

    The row is claimed (inserted, `status` null) before the command runs, so a concurrent retry waits
    for it instead of running the command twice.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Null while the first request runs")
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="markets_idempotency_user_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id}): {self.status or 'running'}"
