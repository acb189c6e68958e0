"""A web process made ready before its first visitor, with its long-lived objects out of the collector.

Python's cyclic garbage collector stops the process to walk every object of its oldest generation. In
a daphne process most of them live as long as the process: Django, Channels, Twisted, the API's pydantic
schemas, the compiled templates (about 130,000 objects). A full collection (150,000-215,000 objects with
the sockets') took 110-210 ms, and no socket is written meanwhile: the push benchmark's worst pushes to
500 sockets were the ones a collection fell on. So the process loads at start what its first request would load lazily (the URLconf
with every view and the API, the templates) and then freezes what it holds (`gc.freeze`): those objects
are left out of every later collection. What is made afterwards (requests, sockets, renderings) is
collected as before; frozen objects are still freed when nothing refers to them.
"""

from __future__ import annotations

import gc
from pathlib import Path

from django.conf import settings
from django.template.loader import get_template
from django.urls import get_resolver


def templates() -> list[str]:
    """Every template of the project's own folder, by the name a view asks for."""
    names = []
    for folder in settings.TEMPLATES[0]["DIRS"]:
        root = Path(folder)
        names += [str(p.relative_to(root)) for p in sorted(root.rglob("*.html"))]
    return names


def warm() -> int:
    """Load the URLconf and compile the templates, then freeze every object the collector tracks; the
    number frozen (for the log and the tests)."""
    get_resolver().url_patterns  # noqa: B018  (imports every view, the API and its schemas)
    for name in templates():
        get_template(name)  # an {% extends %} is looked up when rendered, not here
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
