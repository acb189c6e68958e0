"""The admin's part of corporate actions: each session's actions on its page (kind, leg, cut, parameters,
status, when applied and what it did to the leg) and a list of every action, searchable by session. They
are projections of the log, never editable; scheduling goes through the service (the API, the floor)."""

from __future__ import annotations

from django.contrib import admin

from ledger.admin import ReadOnlyAdmin
from markets.models import CorporateAction
from markets.selectors import actions as reads


def _did(obj: CorporateAction) -> str:
    made = reads.summary(obj.session, obj)
    if made is None:
        return ""
    leftover = f", {made.leftover} leftover units" if made.leftover else ""
    return f"q {made.q_before} -> {made.q_after}, cash {made.cash_total}{leftover}"


class CorporateActionInline(admin.TabularInline):
    model = CorporateAction
    extra = 0
    can_delete = False
    fields = ("number", "kind", "leg", "effective_at", "parameters", "status", "applied_at", "outcome")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="params")
    def parameters(self, obj: CorporateAction) -> str:
        return reads.params_text(obj.params)

    @admin.display(description="what it did")
    def outcome(self, obj: CorporateAction) -> str:
        return _did(obj)


@admin.register(CorporateAction)
class CorporateActionAdmin(ReadOnlyAdmin):
    list_display = ("number", "session", "kind", "leg", "effective_at", "parameters", "status", "applied_at",
                    "outcome")  # fmt: skip
    list_filter = ("kind", "status")
    search_fields = ("session__id", "leg")
    list_select_related = ("session",)
    readonly_fields = [f.name for f in CorporateAction._meta.fields] + ["parameters", "outcome"]

    @admin.display(description="params")
    def parameters(self, obj: CorporateAction) -> str:
        return reads.params_text(obj.params)

    @admin.display(description="what it did")
    def outcome(self, obj: CorporateAction) -> str:
        return _did(obj)
