from django.contrib import admin

from oracle.models import Tick


@admin.register(Tick)
class TickAdmin(admin.ModelAdmin):
    list_display = ("id", "session_id", "symbol", "at", "price", "source")
    list_filter = ("session_id", "symbol", "source")

    def has_change_permission(self, request, obj=None) -> bool:
        return False
