"""The session form's fixing rule: the simple choice (last, median, twap, vwap, close with its window, the
window after t2, the least volume and the source) or, for a composite or a fallback, the rule as JSON. Either
is checked by the one checker (`oracle.fixing_rules.validate_rule`), whose refusal is said beside the field
it concerns; the service checks it again."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms

from oracle import fixing_rules, units

_BLANKS = " \t\r\n"
MAX_WINDOW = 86400
# Which field a refusal of the simple rule belongs beside, by the words the checker starts it with.
FIXING_FIELDS = (("The fixing window", "fixing_window"), ("The window after", "fixing_after"),
                 ("min_volume", "fixing_min_volume"), ("A source", "fixing_source"))  # fmt: skip


def _fixing_field(message: str) -> str:
    return next((name for start, name in FIXING_FIELDS if message.startswith(start)), "fixing_rule")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class FixingRuleFields(forms.Form):
    """The fixing rule's fields and their reading; `fixing(data)` gives the checked rule (None: refused)."""

    fixing_rule = forms.ChoiceField(
        label="Fixing rule",
        choices=[
            ("last", "Last tick at or before t2"),
            ("median", "Median over a window"),
            ("twap", "Time-weighted average (TWAP)"),
            ("vwap", "Volume-weighted average (VWAP)"),
            ("close", "Close of one source"),
        ],
        initial="last",
        help_text="How S_t2 is taken from the oracle's ticks",
    )
    fixing_window = forms.CharField(
        label="Window before t2",
        required=False,
        strip=False,
        max_length=64,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text="Seconds (median, twap, vwap), 1 to 86,400; default 60",
    )
    fixing_after = forms.CharField(
        label="Window after t2",
        required=False,
        strip=False,
        max_length=64,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text="Seconds after t2 for a centred window (WM/Reuters); the settlement waits until it ends",
    )
    fixing_min_volume = forms.CharField(
        label="Least volume",
        required=False,
        strip=False,
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="Units traded in the window, or no fixing (e.g. 1000); blank: no minimum",
    )
    fixing_source = forms.CharField(
        label="Source",
        required=False,
        max_length=64,
        help_text="Only this oracle source's ticks count (the venue of a close); blank: every source",
    )
    fixing_json = forms.CharField(
        label="Advanced: rule as JSON",
        required=False,
        max_length=4000,
        widget=forms.Textarea(
            attrs={"rows": 3, "spellcheck": "false", "placeholder": '{"rule": "fallback", "tiers": [...]}'}
        ),
        help_text='A composite or fallback rule; it replaces the choice above. E.g. {"rule": "fallback", "tiers": '
        '[{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}]}',
    )
    FIXING_WINDOWED = ("fixing_window", "fixing_after", "fixing_min_volume")
    FIXING_FIELD_ORDER = ("fixing_rule", *FIXING_WINDOWED, "fixing_source", "fixing_json")

    def clean_fixing_window(self) -> int | None:
        """Whole seconds by the one reader of numbers (`units.read_whole`), not int(): `1_0` is refused."""
        text = self.cleaned_data.get("fixing_window", "")
        if not text.strip(" \t"):
            return None
        try:
            return units.read_whole(text, "The fixing window", low=1, high=MAX_WINDOW)
        except units.InvalidNumber as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_fixing_min_volume(self) -> str | None:
        """A volume as typed, its decimal comma read as a point; the rule's checker judges it."""
        text = self.cleaned_data.get("fixing_min_volume", "")
        if not text.strip(_BLANKS):
            return None
        try:
            return str(units.read_decimal(units.read_form_decimal(text, "The least volume"), "The least volume"))
        except units.InvalidNumber as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_fixing_json(self) -> object:
        """The advanced rule as JSON (numbers read exactly, never as floats); None when left blank."""
        text = self.cleaned_data.get("fixing_json", "")
        if not text.strip(_BLANKS):
            return None
        try:
            return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
        except RecursionError:
            raise forms.ValidationError("The rule is not valid JSON: nested too deeply") from None
        except ValueError as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            said = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise forms.ValidationError(f"The rule is not valid JSON: {said}{where}") from None

    def fixing(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The rule typed (the JSON, or the choice and its settings), checked by the one checker
        (`oracle.fixing_rules.validate_rule`), its refusal said beside the field it concerns."""
        if self.has_error("fixing_json"):
            return None
        typed = data.get("fixing_json")
        if typed is not None:
            try:
                return fixing_rules.validate_rule(typed)
            except fixing_rules.InvalidRule as exc:
                self.add_error("fixing_json", str(exc))
                return None
        name = data.get("fixing_rule")
        if name is None or any(self.has_error(f) for f in (*self.FIXING_WINDOWED, "fixing_source")):
            return None
        rule: dict[str, Any] = {"rule": name}
        if fixing_rules.RULES[name].windowed:  # a window's settings left typed under last or close say nothing
            rule["window"] = data.get("fixing_window") or 60
            after = data.get("fixing_after", "").strip(_BLANKS)
            if after:
                rule["after"] = after
            if data.get("fixing_min_volume") is not None:
                rule["min_volume"] = data["fixing_min_volume"]
        if data.get("fixing_source"):
            rule["source"] = data["fixing_source"]
        try:
            return fixing_rules.validate_rule(rule)
        except fixing_rules.InvalidRule as exc:
            said = str(exc).replace("min_volume", "The least volume", 1)  # the field's own name
            self.add_error(_fixing_field(str(exc)), said)
            return None
