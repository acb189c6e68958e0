from django.contrib import admin

from oracle.fixing_methods import show_volume
from oracle.models import Tick


@admin.register(Tick)
class TickAdmin(admin.ModelAdmin):
    list_display = ("id", "session_id", "symbol", "at", "price", "volume_units", "source")
    list_filter = ("session_id", "symbol", "source")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="volume (units)", ordering="volume")
    def volume_units(self, tick: Tick) -> str:
        """The size traded at the tick as people write it (1234.5), or a dash when the feed gave none."""
        return show_volume(tick.volume) if tick.volume is not None else "-"
