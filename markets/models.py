"""Read models of the market. Every row here is a projection of ledger events (see projections.py):
services never write these tables except through `projections.apply`.

Quantities, rates and prices are integers in the base units of `markets.domain`; money is stored as
an exact decimal string because q.S can exceed a 64-bit integer.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from markets import domain
from markets.access_models import (  # noqa: F401  (who may come in: access state)
    ApiToken,
    IdempotencyRecord,
    Invite,
    InviteUse,
    RejoinLink,
)
from markets.action_models import CorporateAction  # noqa: F401  (corporate actions)
from markets.batch_models import Batch, Fill, Order  # noqa: F401  (batch auctions)
from markets.domain import orders as order_rules


class Session(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", "Created"
        OPEN = "open", "Open"
        CLOSED = "closed", "Trading closed"  # a timed session past t2, waiting for its settlement
        SETTLED = "settled", "Settled"
        CANCELLED = "cancelled", "Cancelled"  # never opened (e.g. t2 passed before it could)

    class StartMode(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate (organiser opens)"
        SCHEDULED = "scheduled", "Scheduled (opens at t1)"

    class EndMode(models.TextChoices):
        MANUAL = "manual", "Manual (organiser settles)"
        TIMED = "timed", "Timed (settles at t2)"

    class AllocationMode(models.TextChoices):
        PRO_RATA = "pro_rata", "Equal pro-rata"
        CUSTOM = "custom", "Custom matrix"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public (any signed-in user may watch)"
        PARTICIPANTS = "participants", "Participants only"

    class Mechanism(models.TextChoices):
        RFQ = "rfq", "RFQ (request, quote, accept)"
        BATCH = "batch", "Batch auction (sealed limit orders, cleared every N seconds)"
        BOTH = "both", "Both (RFQs and batch auctions)"

    id = models.SlugField(primary_key=True, max_length=64)
    title = models.CharField(max_length=200, blank=True)
    legs = models.JSONField()
    q = models.JSONField(help_text="Basket in base units (10**-6) per leg")
    t1 = models.DateTimeField(null=True, blank=True)
    t2 = models.DateTimeField(null=True, blank=True)
    start_mode = models.CharField(max_length=16, choices=StartMode.choices)
    end_mode = models.CharField(max_length=16, choices=EndMode.choices)
    allocation_mode = models.CharField(max_length=16, choices=AllocationMode.choices)
    fixing_rule = models.JSONField()
    # Corporate actions: each leg's applied splits [[cut, "ratio"], ...] (CorporateActionApplied), so that a
    # tick from before a cut reads at the price level after it with no extra read on the trade path.
    splits = models.JSONField(default=dict, blank=True)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When trading closed (t2 of a timed session)")
    settled_at = models.DateTimeField(null=True, blank=True)
    # Why a due settlement could not happen yet (e.g. no price for a leg at t2), or why the session was
    # cancelled; empty otherwise.
    waiting_reason = models.CharField(max_length=500, blank=True)
    # The organiser paused trading (TradingPaused) and has not resumed it yet; null while trading runs.
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=500, blank=True)
    # How it trades (SessionCreated; logs before the setting: RFQ only) and, for batch auctions, every how
    # many seconds resting orders clear, the band around the oracle's prices, and the anti-spam limits.
    mechanism = models.CharField(max_length=8, choices=Mechanism.choices, default=Mechanism.RFQ)
    batch_seconds = models.PositiveIntegerField(null=True, blank=True)
    batch_band = models.CharField(max_length=16, blank=True, help_text="Exact decimal, e.g. 0.10")
    max_orders = models.PositiveIntegerField(null=True, blank=True, help_text="Resting orders per participant")
    min_order = models.BigIntegerField(null=True, blank=True, help_text="Least order size, base units (10**-6)")
    next_cut_at = models.DateTimeField(null=True, blank=True, help_text="When the next batch clears")
    # Bounded shorting (SessionCreated "margin"; "" = off: no holding below 0), exact decimal fractions.
    short_limit = models.CharField(max_length=16, blank=True, help_text="Most short per leg, fraction of q_k")
    margin_band = models.CharField(max_length=16, blank=True, help_text="Scenario box: S(1-m) to S(1+m)")
    initial_margin = models.CharField(max_length=16, blank=True, help_text="IM: fraction of gross short value")
    batches = models.PositiveIntegerField(default=0, help_text="Batches recorded (BatchCleared)")
    version = models.PositiveIntegerField(default=0, help_text="Last applied event version of this stream")
    last_seq = models.BigIntegerField(default=0, help_text="Global seq of the last applied event")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("view_any_session", "Can watch every session, participants-only ones too (auditors)")]
        constraints = [
            # Session ids are unique ignoring case: `DEMO` cannot be created beside `demo`.
            models.UniqueConstraint(Lower("id"), name="markets_session_id_ci"),
        ]

    def __str__(self) -> str:
        return self.id

    def phase(self, now: dt.datetime) -> str:
        """The status as of `now`: an open timed session at or past t2 reads "closed" even before the
        scheduler has recorded TradingClosed (the commands refuse trading by the same rule)."""
        return domain.session_phase(self.status, self.end_mode, self.t2, now)

    def trading_open(self, now: dt.datetime) -> bool:
        return self.phase(now) == self.Status.OPEN

    @property
    def trading_ends(self) -> dt.datetime | None:
        return self.t2 if self.end_mode == self.EndMode.TIMED else None  # by the clock; None: by a command

    @property
    def stream(self) -> str:
        return stream_name(self.id)

    @property
    def q_display(self) -> list[Decimal]:
        return [domain.to_decimal(x, domain.QTY_DP) for x in self.q]

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def trades_by_rfq(self) -> bool:
        return order_rules.by_rfq(self.mechanism)

    @property
    def trades_by_batch(self) -> bool:
        return order_rules.by_batch(self.mechanism)

    @property
    def margin(self):
        """Its shorting settings (`markets.domain.margin.MarginSettings`; off unless short_limit is set)."""
        from markets.domain.margin import MarginSettings

        return MarginSettings(self.short_limit, self.margin_band, self.initial_margin)

    @property
    def shorting(self) -> bool:
        return bool(self.short_limit)


stream_name = domain.stream_name
NAME_MAX = 150  # a display name as recorded: a full name longer than this is cut (it is only shown)


class Participant(models.Model):
    class Role(models.TextChoices):
        ORGANISER = "organiser", "Organiser"
        TRADER = "trader", "Trader"
        MAKER = "maker", "Market maker"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="participations")
    username = models.CharField(max_length=150)
    # The name people see (ParticipantJoined's "name": what a guest typed, an account's full name, else
    # its username); `username` names the account. Logs written before it was recorded give the username.
    display_name = models.CharField(max_length=NAME_MAX)
    role = models.CharField(max_length=16, choices=Role.choices)
    joined_at = models.DateTimeField()
    # Bounded shorting: when its W fell below 0 (PositionLiquidated), and whether its buy-back orders
    # still wait for their batch (auto-deleveraging follows that batch if they leave a short).
    liquidated_at = models.DateTimeField(null=True, blank=True)
    liquidation_pending = models.BooleanField(default=False)
    # Corporate actions: the cash paid to it (or owed by it) by dividends, cash mergers and cash in lieu,
    # exact money text (10**-12); paid with its payout at the settlement.
    cash = models.CharField(max_length=64, default="0")
    # The same actions applied to its initial allocation (what it would hold had it never traded): the cash
    # that allocation would have been paid. P&L compares the payout with this allocation's value plus it.
    initial_cash = models.CharField(max_length=64, default="0")

    class Meta:
        ordering = ["session", "username"]
        constraints = [
            models.UniqueConstraint(fields=["session", "user"], name="markets_participant_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.username} ({self.role}) in {self.session_id}"

    @property
    def holds(self) -> bool:
        return self.role in domain.HOLDER_ROLES


class Holding(models.Model):
    """x[i][k]: what participant i holds of leg k, and what it was given at opening."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="holdings")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="holdings")
    leg = models.CharField(max_length=32)
    leg_index = models.PositiveSmallIntegerField()
    qty = models.BigIntegerField()
    initial = models.BigIntegerField()
    # What its resting orders may give (batch auctions): available = qty - reserved.
    reserved = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["session", "participant__username", "leg_index"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "leg_index"], name="markets_holding_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}: {domain.qty_str(self.qty)} {self.leg}"


class RFQ(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        LAPSED = "lapsed", "Lapsed"  # still open when trading closed or the session settled

    id = models.BigIntegerField(primary_key=True)
    # Found by the board's index (session, status, id): one index fewer to write per RFQ.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="rfqs", db_index=False)
    taker = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="rfqs")
    give_leg = models.CharField(max_length=32)
    get_leg = models.CharField(max_length=32)
    quantity = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "RFQ"
        indexes = [models.Index(fields=["session", "status", "id"], name="markets_rfq_by_status")]  # the board

    def __str__(self) -> str:
        return f"RFQ {self.id}: {domain.qty_str(self.quantity)} {self.give_leg} -> {self.get_leg}"

    def status_at(self, when, ends: dt.datetime | None = None) -> str:
        """What the RFQ is at `when`: open at its session's `trading_ends` reads "lapsed" (see `Quote`)."""
        return domain.rfq_status(self.status, when, ends)


class Quote(models.Model):
    class Status(models.TextChoices):
        LIVE = "live", "Live"
        WITHDRAWN = "withdrawn", "Withdrawn"
        FILLED = "filled", "Filled"
        LAPSED = "lapsed", "Lapsed"  # its RFQ was filled by another quote, cancelled, or trading closed
        EXPIRED = "expired", "Expired"  # its lifetime ran out (QuotesExpired)

    id = models.BigIntegerField(primary_key=True)
    rfq = models.ForeignKey(RFQ, on_delete=models.CASCADE, related_name="quotes")
    maker = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="quotes")
    rate = models.BigIntegerField(help_text="Units of the get leg per unit of the give leg, 10**-8")
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LIVE)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["rate", "id"]

    def __str__(self) -> str:
        return f"Quote {self.id} on RFQ {self.rfq_id} at {domain.rate_str(self.rate)}"

    def is_live_at(self, when) -> bool:
        return self.status == self.Status.LIVE and self.expires_at > when

    def status_at(self, when, ends: dt.datetime | None = None) -> str:
        """What the quote is at `when`: a live quote past its expiry reads "expired", one live at its
        session's `trading_ends` "lapsed", before the scheduler has recorded them (the commands refuse them
        by the same rules)."""
        return domain.quote_status(self.status, self.expires_at, when, ends)


class Trade(models.Model):
    id = models.BigIntegerField(primary_key=True)
    # Found by the (session, id) and (session, executed_at) indexes: one index fewer to write per trade.
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="trades", db_index=False)
    rfq = models.ForeignKey(RFQ, on_delete=models.CASCADE, related_name="trades")
    quote = models.OneToOneField(Quote, on_delete=models.CASCADE, related_name="trade")
    taker = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="taker_trades")
    maker = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="maker_trades")
    give_leg = models.CharField(max_length=32)
    get_leg = models.CharField(max_length=32)
    give_qty = models.BigIntegerField()
    get_qty = models.BigIntegerField()
    rate = models.BigIntegerField()
    executed_at = models.DateTimeField()
    seq = models.BigIntegerField(help_text="Ledger seq of the TradeExecuted event")

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The floor's blotter (newest first) and its chart's trade marks (a time window).
            models.Index(fields=["session", "id"], name="markets_trade_by_session"),
            models.Index(fields=["session", "executed_at"], name="markets_trade_by_time"),
        ]

    def __str__(self) -> str:
        return f"Trade {self.id}: {domain.qty_str(self.give_qty)} {self.give_leg} -> {domain.qty_str(self.get_qty)} {self.get_leg}"

    @property
    def give_qty_display(self) -> Decimal:
        return domain.to_decimal(self.give_qty, domain.QTY_DP)

    @property
    def get_qty_display(self) -> Decimal:
        return domain.to_decimal(self.get_qty, domain.QTY_DP)

    @property
    def rate_display(self) -> Decimal:
        return domain.to_decimal(self.rate, domain.RATE_DP).normalize()


class Settlement(models.Model):
    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True, related_name="settlement")
    prices = models.JSONField(help_text="S_t2 per leg, base units 10**-6")
    fixing = models.JSONField(help_text="Rule and the ticks the prices came from")
    total = models.CharField(max_length=64, help_text="sum of payouts, exact decimal")
    expected = models.CharField(max_length=64, help_text="q . S_t2, exact decimal")
    deficit = models.CharField(
        max_length=64, blank=True, help_text="Sum of the negative x_i . S_t2 taken pro rata from the positive ones"
    )
    settled_at = models.DateTimeField()
    seq = models.BigIntegerField()

    def __str__(self) -> str:
        return f"Settlement of {self.session_id}: {self.total}"


class Payout(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="payouts")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="payouts")
    amount = models.CharField(max_length=64, help_text="x_i . S_t2, exact decimal (12 places)")
    gross = models.CharField(max_length=64, blank=True, help_text="x_i . S_t2 before a haircut (blank: none)")

    class Meta:
        ordering = ["session", "participant__username"]
        constraints = [
            models.UniqueConstraint(fields=["session", "participant"], name="markets_payout_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}: {self.amount}"


class Presence(models.Model):
    """Who has the floor open now: sockets connected per (session, user) and when they were last seen.

    Operational state, not market state: no event records it, replay neither builds nor checks it, and
    losing it loses nothing of the market. It lives in the database because several web processes may
    serve one session's sockets; a row not refreshed for `STALE_SECONDS` counts as gone (its process
    died without saying so), however many sockets it still counts. Written by `markets.push.presence`.
    """

    HEARTBEAT_SECONDS = 20  # how often each web process refreshes the rows of the sockets it holds
    STALE_SECONDS = 60  # three missed heartbeats: the process that counted these sockets is gone

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="presences")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    sockets = models.IntegerField(default=0, help_text="Sockets open now (as last counted)")
    last_seen = models.DateTimeField(help_text="Last connect, disconnect or heartbeat")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "user"], name="markets_presence_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.session_id}: {self.sockets} socket(s), seen {self.last_seen:%H:%M:%S}"

    def connected_at(self, now: dt.datetime) -> bool:
        """Connected now: a socket counted, and refreshed recently enough that its process is alive."""
        return self.sockets > 0 and self.last_seen > now - dt.timedelta(seconds=self.STALE_SECONDS)
