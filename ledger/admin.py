"""Events are visible and searchable, never editable: no add, change or delete, even for superusers."""

from django.contrib import admin

from ledger.models import Event


class ReadOnlyAdmin(admin.ModelAdmin):
    """Visible and searchable, never editable: no add, change or delete, even for superusers."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "stream", "version", "type", "at", "hash_prefix")
    list_filter = ("type", "stream")
    search_fields = ("stream", "type", "payload", "hash")
    readonly_fields = ("seq", "stream", "version", "type", "payload", "at", "prev_hash", "hash")
    actions = None

    @admin.display(description="hash")
    def hash_prefix(self, obj: Event) -> str:
        return obj.hash[:12]
