"""Exact numbers as a person writes them: `{{ x|plain }}` turns Decimal("100.000000") into 100 and
Decimal("0.62000000") into 0.62 (Decimal.normalize alone would print 1E+2)."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def plain(value: object) -> object:
    if not isinstance(value, Decimal) or not value.is_finite():
        return value
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
