from django.urls import path

from markets import consumers

websocket_urlpatterns = [
    # Browsers: HTML fragments for the floor (htmx ws extension).
    path("ws/sessions/<slug:session_id>/", consumers.FloorConsumer.as_asgi()),
    # Programs: the seed's JSON stream, resumable with ?after=SEQ.
    path("ws/sessions/<slug:session_id>", consumers.StreamConsumer.as_asgi()),
]
