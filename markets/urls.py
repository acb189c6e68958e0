from django.urls import path

from markets import views

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
    path("rfq/<int:rfq_id>/quote", views.quote_create, name="quote_create"),
    path("rfq/<int:rfq_id>/cancel", views.rfq_cancel, name="rfq_cancel"),
    path("quotes/<int:quote_id>/accept", views.quote_accept, name="quote_accept"),
    path("quotes/<int:quote_id>/withdraw", views.quote_withdraw, name="quote_withdraw"),
]
