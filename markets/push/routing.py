from django.urls import path, re_path

from markets.push import consumers

websocket_urlpatterns = [
    # Browsers: HTML fragments for the floor (htmx ws extension).
    path("ws/sessions/<slug:session_id>/", consumers.FloorConsumer.as_asgi()),
    # Programs: the seed's JSON stream, resumable with ?after=SEQ.
    path("ws/sessions/<slug:session_id>", consumers.StreamConsumer.as_asgi()),
    # Anything else (e.g. /ws/sessions/a%20b/): a clean 4404, not a 500.
    re_path(r"", consumers.NoRoute.as_asgi()),
]
