"""A web process loads at start what its first request would, then freezes it out of the collector."""

from __future__ import annotations

import copy
import gc

import pytest
from django.conf import settings
from django.template import TemplateSyntaxError
from django.test import override_settings

from sessionsite import warm


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_every_template_compiles_and_what_was_loaded_is_frozen(unfrozen):
    names = warm.templates()
    assert {"base.html", "markets/floor.html", "registration/login.html"} <= set(names)
    frozen = warm.warm()
    assert frozen > 10_000 and gc.get_freeze_count() == frozen
    assert not any(o is warm for o in gc.get_objects())  # the modules are out of the collector's walks


def test_a_template_that_does_not_compile_stops_the_start_not_a_visitor(tmp_path, unfrozen):
    (tmp_path / "broken.html").write_text("{% if %}")
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    with pytest.raises(TemplateSyntaxError), override_settings(TEMPLATES=templates):
        warm.warm()
