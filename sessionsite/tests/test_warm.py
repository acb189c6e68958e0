"""A web process loads at start what its first request would, then freezes it out of the collector."""

from __future__ import annotations

import copy
import gc

import pytest
from django.conf import settings
from django.template import TemplateSyntaxError
from django.template.loader import get_template
from django.test import override_settings

from sessionsite import warm


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_every_template_compiles_and_what_was_loaded_is_frozen(unfrozen):
    names = warm.templates()
    assert {"base.html", "markets/floor.html", "registration/login.html"} <= set(names)
    assert warm.warm() > 10_000
    # What start-up loaded is out of the collector's walks: the modules, the API, the compiled templates.
    # (The freeze count itself may fall at once: another thread can free a frozen object meanwhile.)
    from markets.api import api

    floor = get_template("markets/floor.html")
    walked = {id(o) for o in gc.get_objects()}
    assert not walked & {id(warm), id(api), id(floor.template)}  # (`floor` is a new wrapper per call)


def test_a_template_that_does_not_compile_stops_the_start_not_a_visitor(tmp_path, unfrozen):
    (tmp_path / "broken.html").write_text("{% if %}")
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    with pytest.raises(TemplateSyntaxError), override_settings(TEMPLATES=templates):
        warm.warm()
