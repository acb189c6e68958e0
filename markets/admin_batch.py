"""The admin's part of batch auctions: read-only lists of orders and batches with their fills, searchable by
session. They are projections of the log: never editable, here as anywhere. (The session form's mechanism and
batch settings are the floor's own form, `markets.forms.SessionCreateForm`, made by the same service.)"""

from __future__ import annotations

from django.contrib import admin

from ledger.admin import ReadOnlyAdmin
from markets import domain
from markets.models import Batch, Fill, Order


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    can_delete = False
    fields = ("order", "participant", "give_leg", "get_leg", "gave", "got", "rest_after")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="given")
    def gave(self, obj: Fill) -> str:
        return domain.qty_str(obj.given)

    @admin.display(description="received")
    def got(self, obj: Fill) -> str:
        return domain.qty_str(obj.received)

    @admin.display(description="rest")
    def rest_after(self, obj: Fill) -> str:
        return domain.qty_str(obj.rest)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Every order, sealed ones too: the admin is for staff, who may read them (`selectors.sealed`)."""

    list_display = ("id", "session", "participant", "give_leg", "get_leg", "size", "left", "limit", "status",
                    "lifetime", "placed_at", "closed_at")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("session__id", "participant__username")
    list_select_related = ("participant",)
    readonly_fields = [f.name for f in Order._meta.fields]

    @admin.display(description="quantity")
    def size(self, obj: Order) -> str:
        return domain.qty_str(obj.quantity)

    @admin.display(description="rest")
    def left(self, obj: Order) -> str:
        return domain.qty_str(obj.rest)

    @admin.display(description="limit rate")
    def limit(self, obj: Order) -> str:
        return domain.rate_str(obj.limit_rate)

    @admin.display(description="batches left")
    def lifetime(self, obj: Order) -> str:
        return "gtc" if obj.batches_left is None else str(obj.batches_left)


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ("number", "session", "cut_at", "outcome", "orders", "filled", "volume", "price_list", "reason")
    list_filter = ("outcome",)
    search_fields = ("session__id",)
    readonly_fields = [f.name for f in Batch._meta.fields]
    inlines = [FillInline]

    @admin.display(description="prices")
    def price_list(self, obj: Batch) -> str:
        return ", ".join(f"{leg} {domain.price_str(p)}" for leg, p in obj.prices.items())
