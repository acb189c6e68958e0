from django.urls import path

from markets import consumers

websocket_urlpatterns = [
    path("ws/sessions/<slug:session_id>/", consumers.FloorConsumer.as_asgi()),
]
