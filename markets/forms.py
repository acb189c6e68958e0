"""Forms parse what people type; the services decide. A service error is put back on the form."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from markets import domain
from markets.errors import DomainError
from markets.models import Participant, Session
from oracle import units

_BLANKS = " \t\r\n"  # ASCII only: a no-break space is not a separator, it is refused where it stands


def _split(text: str) -> list[str]:
    """Numbers typed in one field. With a semicolon, semicolons (or line breaks) separate them and each may
    have a decimal comma: `0,5; 1,5; 2`. Without one, commas, semicolons or blanks separate them as ever:
    `100, 60, 80, 120` or `100 60 80 120` (and then `1,5` is two numbers)."""
    if ";" in text:
        parts = [part.strip(_BLANKS) for part in re.split(r"[;\n]", text)]
        return [part for part in parts if part]
    return [part for part in re.split(r"[, \t\r\n]+", text) if part]


def _split_names(text: str) -> list[str]:
    """Names typed in one field: separated by commas, semicolons or new lines (a name may hold spaces)."""
    return [part.strip(_BLANKS) for part in re.split(r"[,;\n]", text) if part.strip(_BLANKS)]


def _basket(text: str, legs: list[str]) -> list[object]:
    """The basket as typed, each value with its decimal comma read as a point (`units.read_form_decimal`)."""
    values = _split(text)
    names = [*legs, *[f"#{k + 1}" for k in range(len(legs), len(values))]]
    try:
        return [units.read_form_decimal(v, f"q for {leg}") for v, leg in zip(values, names, strict=False)]
    except units.InvalidNumber as exc:
        raise forms.ValidationError(exc.message) from None


MAX_WINDOW = 86400


def _with_hint(message: str, typed: str) -> str:
    """A count that does not match, typed with commas and no semicolon, may be decimal commas: say how."""
    if "entries for" in message and "," in typed and ";" not in typed:
        return f"{message}. For decimal commas, separate the values with semicolons: 0,5; 1,5"
    return message


class SessionCreateForm(forms.Form):
    session_id = forms.SlugField(label="Session id", max_length=64, help_text="e.g. demo (unique ignoring case)")
    title = forms.CharField(max_length=200, required=False)
    legs = forms.CharField(
        label="Legs",
        strip=False,  # Django's strip drops Unicode spaces too: ours drops ASCII blanks only (see _split_names)
        help_text=f"Names separated by commas: AAPL, NVDA or GOLD 3m, GOLD 1y ({units.LEG_RULE}; "
        f"{domain.MIN_LEGS} to {domain.MAX_LEGS} legs, case kept, each different ignoring case)",
    )
    q = forms.CharField(
        label="Basket q",
        strip=False,
        help_text=f"One quantity per leg: 100, 60, 80, 120 (at most {units.MAX_QTY_UNITS:,} per leg). With "
        "decimal commas, separate them with semicolons: 0,5; 1,5; 2",
    )
    start_mode = forms.ChoiceField(choices=Session.StartMode.choices, initial=Session.StartMode.IMMEDIATE)
    end_mode = forms.ChoiceField(choices=Session.EndMode.choices, initial=Session.EndMode.MANUAL)
    t1 = forms.DateTimeField(
        label="t1 (opens)", required=False, help_text="UTC, YYYY-MM-DD HH:MM[:SS]; needed when scheduled"
    )
    t2 = forms.DateTimeField(label="t2 (settles)", required=False, help_text="UTC; needed when timed")
    allocation_mode = forms.ChoiceField(choices=Session.AllocationMode.choices, initial=Session.AllocationMode.PRO_RATA)
    fixing_rule = forms.ChoiceField(
        choices=[
            ("last", "Last tick at or before t2"),
            ("median", "Median over a window"),
            ("twap", "Time-weighted average over a window"),
        ],
        initial="last",
    )
    fixing_window = forms.CharField(
        required=False,
        strip=False,
        max_length=64,
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text="Seconds (median/twap), 1 to 86,400",
    )
    visibility = forms.ChoiceField(
        required=False,
        choices=Session.Visibility.choices,
        initial=Session.Visibility.PUBLIC,
        help_text="Who may watch the floor: any signed-in user, or only the session's participants",
    )

    def clean_legs(self) -> list[str]:
        try:
            return domain.validate_legs(_split_names(self.cleaned_data["legs"]))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_fixing_window(self) -> int | None:
        """Whole seconds by the one reader of numbers (`units.read_whole`), not int(): `1_0` is refused."""
        text = self.cleaned_data.get("fixing_window", "")
        if not text.strip(" \t"):
            return None
        try:
            return units.read_whole(text, "The fixing window", low=1, high=MAX_WINDOW)
        except units.InvalidNumber as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "legs" in data and "q" in data:
            try:
                data["basket"] = _basket(data["q"], data["legs"])
                domain.validate_basket(data["basket"], data["legs"])
            except forms.ValidationError as exc:
                self.add_error("q", exc)
            except DomainError as exc:
                self.add_error("q", _with_hint(exc.message, data["q"]))
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        rule: dict[str, Any] = {"rule": data["fixing_rule"]}
        if data["fixing_rule"] != "last":
            rule["window"] = data.get("fixing_window") or 60
        return {
            "session_id": data["session_id"],
            "title": data.get("title", ""),
            "legs": data["legs"],
            "q": data["basket"],
            "start_mode": data["start_mode"],
            "end_mode": data["end_mode"],
            "t1": data.get("t1"),
            "t2": data.get("t2"),
            "allocation_mode": data["allocation_mode"],
            "fixing_rule": rule,
            "visibility": data.get("visibility") or Session.Visibility.PUBLIC,
        }


class AddParticipantForm(forms.Form):
    session = forms.ModelChoiceField(queryset=Session.objects.filter(status=Session.Status.CREATED))
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[(Participant.Role.TRADER, "Trader"), (Participant.Role.MAKER, "Market maker")])
