"""The monitor's "Schedule an action" form (#33): the kind, the leg, the cut as a person types it in UTC, and
the parameters the kind takes. The form only reads the cut and picks the parameters of the kind chosen (the
others stay typed in hidden fields and are not sent); `services.schedule_action` checks everything else and
its refusal is said beside the form."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from ledger import clock

KINDS = (
    ("split", "Split"),
    ("dividend", "Dividend"),
    ("merger", "Merger"),
    ("rename", "Rename"),
)
# The parameters each kind takes, in the order the form shows them.
PARAMS = {"split": ("ratio",), "dividend": ("amount",), "merger": ("into", "ratio", "cash"), "rename": ("to",)}
CUT_HELP = "UTC: 2030-06-10 13:30, or 13:30:00 for today"


def read_cut(text: str, now: dt.datetime) -> dt.datetime:
    """A cut as typed: a date and time ("2030-06-10 13:30", "2030-06-10T13:30:00", with or without "UTC"
    or an offset), or a time alone for today; read in UTC. ValueError with the form's message otherwise."""
    raw = text.strip()
    if raw.upper().endswith(" UTC"):
        raw = raw[:-4].rstrip()
    refused = f"Write the cut as a date and time in UTC, e.g. 2030-06-10 13:30, or 13:30:00 for today, not {raw[:24]!r}"
    if ":" not in raw:
        raise ValueError(refused)
    try:
        if "-" in raw[:10]:
            at = dt.datetime.fromisoformat(raw)
        else:
            at = dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time.fromisoformat(raw))
    except ValueError:
        raise ValueError(refused) from None
    if at.tzinfo is None or at.utcoffset() is None:
        return at.replace(tzinfo=dt.UTC)
    try:
        return at.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(refused) from None


class ActionForm(forms.Form):
    """Kind, leg and "into" are offered as lists but read as text: a name not offered is the service's to
    refuse, with its own words (unknown_leg, invalid_action)."""

    kind = forms.CharField(max_length=20, widget=forms.Select(choices=KINDS))
    leg = forms.CharField(max_length=32)
    cut = forms.CharField(
        label="Cut",
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "2030-06-10 13:30", "autocomplete": "off", "spellcheck": "false"}),
        help_text=CUT_HELP,
    )
    ratio = forms.CharField(
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "10/1", "autocomplete": "off"}),
        help_text="split: new units per old, e.g. 10/1 (reverse 1/10); merger: units of the other leg per unit",
    )
    amount = forms.CharField(
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "0.25", "inputmode": "decimal", "autocomplete": "off"}),
        help_text="cash per unit held, credited at the cut, paid with the payout",
    )
    into = forms.CharField(required=False, max_length=32)
    cash = forms.CharField(
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"placeholder": "120.00", "inputmode": "decimal", "autocomplete": "off"}),
        help_text="or: cash per unit instead of another leg",
    )
    to = forms.CharField(
        required=False,
        max_length=32,
        widget=forms.TextInput(attrs={"placeholder": "META", "autocomplete": "off"}),
        help_text="the name people see from the cut on",
    )

    def __init__(self, legs: list[str], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "ca-%s")  # ids of their own on the monitor's page
        super().__init__(*args, **kwargs)
        self.fields["leg"].widget = forms.Select(choices=[(leg, leg) for leg in legs])
        self.fields["into"].widget = forms.Select(choices=[("", "—"), *((leg, leg) for leg in legs)])

    def clean_cut(self) -> dt.datetime:
        try:
            return read_cut(self.cleaned_data["cut"], clock.now())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def params(self) -> dict[str, str]:
        """The parameters of the kind chosen that were typed; a merger's ratio only with the leg it goes into.
        A kind the form does not know gets none (the service refuses the kind)."""
        data = self.cleaned_data
        kind = data.get("kind", "")
        typed = {name: data[name].strip() for name in PARAMS.get(kind, ()) if data.get(name, "").strip()}
        if kind == "merger" and "into" not in typed:
            typed.pop("ratio", None)
        return typed
