"""Forms parse what people type; the services decide. A service error is put back on the form."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from markets import domain
from markets.errors import DomainError
from markets.models import Participant, Session
from oracle import units


def _split(text: str) -> list[str]:
    """Numbers typed in one field: separated by commas, semicolons or blanks."""
    return [part for part in re.split(r"[,;\s]+", text) if part]


def _split_names(text: str) -> list[str]:
    """Names typed in one field: separated by commas, semicolons or new lines (a name may hold spaces)."""
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


class SessionCreateForm(forms.Form):
    session_id = forms.SlugField(label="Session id", max_length=64, help_text="e.g. demo (unique ignoring case)")
    title = forms.CharField(max_length=200, required=False)
    legs = forms.CharField(
        label="Legs",
        help_text=f"Names separated by commas: AAPL, NVDA or GOLD 3m, GOLD 1y ({units.LEG_RULE}; "
        f"{domain.MIN_LEGS} to {domain.MAX_LEGS} legs, case kept, each different ignoring case)",
    )
    q = forms.CharField(
        label="Basket q",
        help_text=f"One quantity per leg: 100, 60, 80, 120 (digits and a decimal point, at most "
        f"{units.MAX_QTY_UNITS:,} per leg)",
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
    fixing_window = forms.IntegerField(required=False, min_value=1, max_value=86400, help_text="Seconds (median/twap)")
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

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "legs" in data and "q" in data:
            try:
                domain.validate_basket(_split(data["q"]), data["legs"])
            except DomainError as exc:
                self.add_error("q", exc.message)
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
            "q": _split(data["q"]),
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
