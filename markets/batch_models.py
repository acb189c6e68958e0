"""Batch auctions' read models: sealed limit orders, each batch's cut, and its fills. Projected from
OrderPlaced, OrderCancelled and BatchCleared by the one projection (`markets.projections_batch`), like
every other read model; imported by `markets.models`, so `from markets.models import Order` works."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    """A limit order: give up to `quantity` of one leg for another at `limit_rate` or better (units of the
    get leg per unit of the give leg, 10**-8). While it rests, `rest` of its give leg is reserved."""

    class Status(models.TextChoices):
        RESTING = "resting", "Resting"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"  # its batches ran out with a rest unfilled
        LAPSED = "lapsed", "Lapsed"  # trading ended (t2, the settlement) while it rested

    id = models.BigIntegerField(primary_key=True)
    session = models.ForeignKey("markets.Session", on_delete=models.CASCADE, related_name="orders", db_index=False)
    participant = models.ForeignKey("markets.Participant", on_delete=models.CASCADE, related_name="orders")
    give_leg = models.CharField(max_length=32)
    get_leg = models.CharField(max_length=32)
    quantity = models.BigIntegerField(help_text="Base units (10**-6) of the give leg, as placed")
    rest = models.BigIntegerField(help_text="Still to give (reserved while it rests)")
    limit_rate = models.BigIntegerField(help_text="Least units of the get leg per unit given, 10**-8")
    batches_left = models.PositiveIntegerField(null=True, blank=True, help_text="None: good till cancelled")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESTING)
    placed_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    seq = models.BigIntegerField(help_text="Ledger seq of the OrderPlaced event")

    class Meta:
        ordering = ["session", "-id"]
        indexes = [models.Index(fields=["session", "status"], name="markets_order_resting")]

    def __str__(self) -> str:
        return f"order {self.id} in {self.session_id} ({self.status})"


class Batch(models.Model):
    """One cut of a session's book: when, the oracle's prices behind it, the clearing prices, how much
    traded, or why nothing did (`outcome` "none" with its `reason`: every order rested)."""

    session = models.ForeignKey("markets.Session", on_delete=models.CASCADE, related_name="batch_rows")
    number = models.PositiveIntegerField()
    cut_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, help_text="cleared, or none")
    reason = models.CharField(max_length=500, blank=True)
    reference = models.JSONField(help_text="The oracle's price per leg at the cut, 10**-6")
    ticks = models.JSONField(help_text="The tick id behind each reference price")
    prices = models.JSONField(help_text="The clearing price per leg, 10**-6 (empty when nothing cleared)")
    volume = models.CharField(max_length=64, help_text="Traded value at the reference prices, exact decimal")
    orders = models.PositiveIntegerField(help_text="Orders in the book at the cut")
    filled = models.PositiveIntegerField(help_text="Orders that traded")
    seq = models.BigIntegerField()

    class Meta:
        ordering = ["session", "-number"]
        constraints = [models.UniqueConstraint(fields=["session", "number"], name="markets_batch_unique")]

    def __str__(self) -> str:
        return f"batch {self.number} of {self.session_id}"


class Fill(models.Model):
    """What one order gave and received in one batch, and what rested after it."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="fills")
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    participant = models.ForeignKey("markets.Participant", on_delete=models.CASCADE, related_name="fills")
    give_leg = models.CharField(max_length=32)
    get_leg = models.CharField(max_length=32)
    given = models.BigIntegerField()
    received = models.BigIntegerField()
    rest = models.BigIntegerField()

    class Meta:
        ordering = ["batch", "order"]
        constraints = [models.UniqueConstraint(fields=["batch", "order"], name="markets_fill_unique")]

    def __str__(self) -> str:
        return f"order {self.order_id} in batch {self.batch_id}"
