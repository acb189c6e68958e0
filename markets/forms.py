"""Forms parse what people type; the services decide. A service error is put back on the form."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from markets import domain
from markets.domain import margin as margin_rules
from markets.domain import orders as batch_rules
from markets.errors import DomainError
from markets.forms_fixing import FixingRuleFields
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


def _with_hint(message: str, typed: str) -> str:
    """A count that does not match, typed with commas and no semicolon, may be decimal commas: say how."""
    if "entries for" in message and "," in typed and ";" not in typed:
        return f"{message}. For decimal commas, separate the values with semicolons: 0,5; 1,5"
    return message


def _band(text: object) -> str:
    """The band as the service reads it, refused in the form's words."""
    try:
        return batch_rules.batch_settings("batch", band=text).band
    except DomainError as exc:
        raise DomainError(exc.message.replace("batch_band", "The price band"), exc.code) from None


def _smallest(text: object) -> str:
    return domain.qty_str(domain.parse_qty(text, "The smallest order"))


class SessionCreateForm(FixingRuleFields):
    field_order = ("session_id", "title", "legs", "q", "start_mode", "end_mode", "t1", "t2", "allocation_mode",
                   *FixingRuleFields.FIXING_FIELD_ORDER)  # fmt: skip
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
    visibility = forms.ChoiceField(
        required=False,
        choices=Session.Visibility.choices,
        initial=Session.Visibility.PUBLIC,
        help_text="Who may watch the floor: any signed-in user, or only the session's participants",
    )

    # How it trades, and for batch auctions their settings (shown only when the mechanism runs batches).
    mechanism = forms.ChoiceField(
        label="How it trades",
        required=False,
        choices=Session.Mechanism.choices,
        initial=Session.Mechanism.RFQ,
        help_text="RFQ: request quotes, accept one. Batch auction: sealed limit orders, cleared together every N "
        "seconds at one price per leg",
    )
    batch_seconds = forms.CharField(
        label="Seconds per batch",
        required=False,
        strip=False,
        max_length=16,
        initial=str(batch_rules.DEFAULT_BATCH_SECONDS),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text=f"Resting orders clear every N seconds, {batch_rules.BATCH_SECONDS[0]} to "
        f"{batch_rules.BATCH_SECONDS[1]:,}",
    )
    batch_band = forms.CharField(
        label="Price band",
        required=False,
        strip=False,
        max_length=16,
        initial=batch_rules.DEFAULT_BAND,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="Each clearing price stays within this fraction of the oracle's: 0.10 is ±10% (at most 0.5; "
        "0,10 is fine)",
    )
    max_orders = forms.CharField(
        label="Resting orders per person",
        required=False,
        strip=False,
        max_length=16,
        initial=str(batch_rules.DEFAULT_MAX_ORDERS),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        help_text=f"At most, {batch_rules.MAX_ORDERS[0]} to {batch_rules.MAX_ORDERS[1]:,} (against spam)",
    )
    min_order = forms.CharField(
        label="Smallest order",
        required=False,
        strip=False,
        max_length=32,
        initial=units.short(batch_rules.DEFAULT_MIN_ORDER, domain.QTY_DP),
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="Units of the leg an order gives, e.g. 0.01 (0,01 is fine)",
    )
    BATCH_FIELDS = ("batch_seconds", "batch_band", "max_orders", "min_order")

    # Bounded shorting (off by default; its three settings shown only when it is ticked).
    allow_shorting = forms.BooleanField(
        label="Allow shorting",
        required=False,
        help_text="Holdings may go below zero within a short limit, guarded by a margin rule (W against a "
        "requirement over a price band)",
    )
    short_limit = forms.CharField(
        label="Short limit",
        required=False,
        strip=False,
        max_length=16,
        initial="0.2",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="The most anyone may be short of a leg, as a fraction of q (and the pool's gross cap): 0.2 is 20%",
    )
    margin_band = forms.CharField(
        label="Margin band",
        required=False,
        strip=False,
        max_length=16,
        initial=margin_rules.DEFAULT_BAND,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="W is the worst case with every price from S(1-m) to S(1+m): 0.15 is ±15%",
    )
    initial_margin = forms.CharField(
        label="Initial margin",
        required=False,
        strip=False,
        max_length=16,
        initial=margin_rules.DEFAULT_INITIAL,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="W must stay at least this fraction of the short value: 0.05 is 5%",
    )
    SHORT_FIELDS = ("short_limit", "margin_band", "initial_margin")

    def clean_legs(self) -> list[str]:
        try:
            return domain.validate_legs(_split_names(self.cleaned_data["legs"]))
        except DomainError as exc:
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
        data["fixing"] = self.fixing(data)
        data["batch"] = self._batch_settings(data)
        data["shorting"] = self._short_settings(data)
        return data

    def _short_settings(self, data: dict[str, Any]) -> dict[str, str]:
        """The shorting settings, checked by the rule the service applies (`margin.margin_settings`), its
        refusal said beside the field it names; none when shorting is not ticked (the fields keep their
        defaults, hidden)."""
        if not data.get("allow_shorting"):
            return {}
        typed = {name: self.cleaned_data.get(name, "").strip(_BLANKS) for name in self.SHORT_FIELDS}
        if not typed["short_limit"]:
            self.add_error("short_limit", "Give a short limit (e.g. 0.2), or untick Allow shorting")
            return {}
        try:
            settings = margin_rules.margin_settings(**typed)
        except DomainError as exc:
            field = exc.code.removeprefix("invalid_")
            self.add_error(field if field in self.SHORT_FIELDS else None, exc.message)
            return {}
        return {
            "short_limit": settings.short_limit,
            "margin_band": settings.margin_band,
            "initial_margin": settings.initial_margin,
        }

    def _batch_settings(self, data: dict[str, Any]) -> dict[str, object]:
        """The batch settings as typed (decimal commas read as points), each checked by the rule the
        service applies, its refusal said beside its own field; none for an RFQ session (their fields
        hold defaults, hidden)."""
        mechanism = data.get("mechanism")
        if mechanism not in ("batch", "both"):
            return {}
        readers = {
            "batch_seconds": lambda t: units.read_whole(
                t, "Seconds per batch", low=batch_rules.BATCH_SECONDS[0], high=batch_rules.BATCH_SECONDS[1]
            ),
            "max_orders": lambda t: units.read_whole(
                t, "Resting orders per person", low=batch_rules.MAX_ORDERS[0], high=batch_rules.MAX_ORDERS[1]
            ),
            "batch_band": lambda t: _band(units.read_form_decimal(t, "The price band")),
            "min_order": lambda t: _smallest(units.read_form_decimal(t, "The smallest order")),
        }
        settings: dict[str, object] = {}
        for name, read in readers.items():
            typed = self.cleaned_data.get(name, "")
            if not typed.strip(_BLANKS):
                continue  # the default
            try:
                settings[name] = read(typed)
            except units.InvalidNumber as exc:
                self.add_error(name, exc.message)
            except DomainError as exc:
                self.add_error(name, exc.message)
        return settings

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
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
            "fixing_rule": data["fixing"],
            "visibility": data.get("visibility") or Session.Visibility.PUBLIC,
            "mechanism": data.get("mechanism") or Session.Mechanism.RFQ,
            **data.get("batch", {}),
            **data.get("shorting", {}),
        }


class AddParticipantForm(forms.Form):
    session = forms.ModelChoiceField(queryset=Session.objects.filter(status=Session.Status.CREATED))
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[(Participant.Role.TRADER, "Trader"), (Participant.Role.MAKER, "Market maker")])
