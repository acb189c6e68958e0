"""The admin's part of batch auctions: the session form's mechanism and batch settings (checked by the same
rules the service applies, shown on their fields; the session is still made by `services.create_session`),
and read-only lists of orders and batches with their fills, searchable by session. They are projections of
the log: never editable, here as anywhere."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from ledger.admin import ReadOnlyAdmin
from markets import domain
from markets.domain import orders as rules
from markets.errors import DomainError
from markets.forms import SessionCreateForm
from markets.models import Batch, Fill, Order, Session

SETTINGS = ("batch_seconds", "batch_band", "max_orders", "min_order")


class SessionForm(SessionCreateForm):
    """The session form with how it trades; the batch settings apply to `batch` and `both` (blank: defaults)."""

    mechanism = forms.ChoiceField(
        required=False, choices=Session.Mechanism.choices, initial=Session.Mechanism.RFQ, help_text="How it trades"
    )
    batch_seconds = forms.CharField(
        required=False,
        max_length=16,
        help_text=f"Seconds between cuts, 1 to 3,600 (default {rules.DEFAULT_BATCH_SECONDS})",
    )
    batch_band = forms.CharField(
        required=False,
        max_length=16,
        help_text=f"Each clearing price within this fraction of the oracle's, e.g. 0.10 (default {rules.DEFAULT_BAND})",
    )
    max_orders = forms.CharField(
        required=False, max_length=16, help_text=f"Resting orders per participant (default {rules.DEFAULT_MAX_ORDERS})"
    )
    min_order = forms.CharField(
        required=False,
        max_length=32,
        help_text=f"Least order size in units (default {domain.qty_str(rules.DEFAULT_MIN_ORDER)})",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        mechanism = data["mechanism"] = data.get("mechanism") or Session.Mechanism.RFQ
        try:
            rules.batch_settings(mechanism, *(data.get(name, "").strip() for name in SETTINGS))
        except DomainError as exc:
            named = [name for name in SETTINGS if exc.message.startswith(name)]
            field = "batch_band" if exc.code == "invalid_batch_band" else (named[0] if named else "mechanism")
            self.add_error(field, exc.message)
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return super().service_kwargs() | {"mechanism": data["mechanism"]} | {n: data[n].strip() for n in SETTINGS}


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
