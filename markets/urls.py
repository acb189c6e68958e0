from django.urls import path

from markets import views

app_name = "markets"

urlpatterns = [
    path("health", views.health, name="health"),
    path("", views.session_list, name="session_list"),
]
