from django.urls import path, register_converter

from markets import views


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
    path("portfolio/", views.portfolio, name="portfolio"),
    path("demo/switch/", views.demo_switch, name="demo_switch"),
    path("sessions/<slug:session_id>/", views.floor, name="floor"),
    path("sessions/<slug:session_id>/join", views.session_join, name="join"),
    path("sessions/<slug:session_id>/open", views.session_open, name="open"),
    path("sessions/<slug:session_id>/settle", views.session_settle, name="settle"),
    path("sessions/<slug:session_id>/rfq", views.rfq_create, name="rfq_create"),
    path("rfq/<id:rfq_id>/quote", views.quote_create, name="quote_create"),
    path("rfq/<id:rfq_id>/cancel", views.rfq_cancel, name="rfq_cancel"),
    path("quotes/<id:quote_id>/accept", views.quote_accept, name="quote_accept"),
    path("quotes/<id:quote_id>/withdraw", views.quote_withdraw, name="quote_withdraw"),
]
