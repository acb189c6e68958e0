from django.urls import path, register_converter
from django.views.generic import RedirectView

from markets import (
    action_views,
    export_views,
    invite_views,
    monitor_views,
    order_views,
    record_views,
    rejoin_views,
    views,
)


class IdConverter:
    """A row id written one way: digits without a leading zero (`01` and `1.0` name nothing)."""

    regex = "[1-9][0-9]{0,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

app_name = "markets"

urlpatterns = [
    path("health", views.health, name="health"),
    path("", views.session_list, name="session_list"),
    path("sessions/", RedirectView.as_view(pattern_name="markets:session_list"), name="sessions"),
    path("portfolio/", record_views.portfolio, name="portfolio"),
    path("demo/switch/", views.demo_switch, name="demo_switch"),
    path("sessions/<slug:session_id>/", views.floor, name="floor"),
    path("sessions/<slug:session_id>/trades/", record_views.history, {"kind": "trades"}, name="trades"),
    path("sessions/<slug:session_id>/log/", record_views.history, {"kind": "log"}, name="log"),
    path("sessions/<slug:session_id>/results", record_views.results, name="results"),
    path("sessions/<slug:session_id>/join", views.session_join, name="join"),
    path("sessions/<slug:session_id>/open", views.session_open, name="open"),
    path("sessions/<slug:session_id>/settle", views.session_settle, name="settle"),
    path("sessions/<slug:session_id>/pause", views.session_pause, name="pause"),
    path("sessions/<slug:session_id>/resume", views.session_resume, name="resume"),
    path("sessions/<slug:session_id>/rfq", views.rfq_create, name="rfq_create"),
    path("rfq/<id:rfq_id>/quote", views.quote_create, name="quote_create"),
    path("rfq/<id:rfq_id>/cancel", views.rfq_cancel, name="rfq_cancel"),
    path("quotes/<id:quote_id>/accept", views.quote_accept, name="quote_accept"),
    path("quotes/<id:quote_id>/withdraw", views.quote_withdraw, name="quote_withdraw"),
    # Batch auctions (markets.order_views): the names the API uses, on the floor.
    path("sessions/<slug:session_id>/orders", order_views.order_place, name="order_place"),
    path("sessions/<slug:session_id>/orders/preview", order_views.order_preview, name="order_preview"),
    path("orders/<id:order_id>/cancel", order_views.order_cancel, name="order_cancel"),
    path("sessions/<slug:session_id>/batches/clear", order_views.batch_clear, name="batch_clear"),
    path("sessions/<slug:session_id>/batches/", order_views.batches, name="batches"),
    path("sessions/<slug:session_id>/export/<slug:table>.csv", export_views.export_download, name="export_table"),
    path("sessions/<slug:session_id>/export.zip", export_views.export_zip, name="export_zip"),
    path("sessions/<slug:session_id>/invites", invite_views.invites, name="invites"),
    path("sessions/<slug:session_id>/invites/new", invite_views.invite_create, name="invite_create"),
    path("sessions/<slug:session_id>/invites/bulk", invite_views.invite_bulk, name="invite_bulk"),
    path("sessions/<slug:session_id>/invites.csv", invite_views.invites_csv, name="invites_csv"),
    path("invites/<id:invite_id>/revoke", invite_views.invite_revoke, name="invite_revoke"),
    path("invites/<id:invite_id>/qr.svg", invite_views.invite_qr, name="invite_qr"),
    path("join/<str:token>", invite_views.join, name="invite_join"),
    # The way back in (markets.rejoin_views): a participant's personal link, and the page it opens.
    path("sessions/<slug:session_id>/rejoin/<id:user_id>", rejoin_views.rejoin_link, name="rejoin_link"),
    path("sessions/<slug:session_id>/rejoin/<id:user_id>/revoke", rejoin_views.rejoin_revoke, name="rejoin_revoke"),
    path("rejoin/<str:token>", rejoin_views.rejoin, name="rejoin"),
    # The organiser's monitor (markets.monitor_views).
    path("sessions/<slug:session_id>/monitor", monitor_views.monitor, name="monitor"),
    path("sessions/<slug:session_id>/monitor/live", monitor_views.monitor_live, name="monitor_live"),
    path("sessions/<slug:session_id>/monitor/open", monitor_views.monitor_open, name="monitor_open"),
    path("sessions/<slug:session_id>/monitor/pause", monitor_views.monitor_pause, name="monitor_pause"),
    path("sessions/<slug:session_id>/monitor/resume", monitor_views.monitor_resume, name="monitor_resume"),
    path("sessions/<slug:session_id>/monitor/settle", monitor_views.monitor_settle, name="monitor_settle"),
    path("sessions/<slug:session_id>/monitor/clear", monitor_views.monitor_clear, name="monitor_clear"),
    path("sessions/<slug:session_id>/monitor/actions", action_views.schedule_action, name="monitor_action"),
]
