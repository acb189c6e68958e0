"""People as the pages name them: `{{ name|person }}` is the name escaped, isolated from the text around
it (`<bdi>`: a right-to-left name does not reorder the numbers beside it), cut with an ellipsis when it is
longer than its column (static/css/app.css, `.person`), and whole in its `title`."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def person(name: object) -> str:
    text = "" if name is None else str(name)
    return format_html('<bdi class="person" title="{}">{}</bdi>', text, text)
