"""The fixing rule at the create form and the admin: the simple choice (last, median, twap, vwap, close with
window, after, least volume and source) and the rule as JSON (composite, fallback); a bad rule is said
inline beside its field in the checker's words and nothing is written; the admin says the rule in words
and shows the settlement's fixing record read-only."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from ledger import clock
from ledger.models import Event
from markets import services
from markets.models import Session, Settlement
from markets.tests.test_fixing_api import BAD, COMPOSITE, FALLBACK
from markets.tests.test_fixings import T2, everywhere, put, timed
from oracle.fixing_rules import InvalidRule, validate_rule

pytestmark = pytest.mark.django_db

FORM = {"session_id": "f1", "legs": "AAPL, NVDA", "q": "10, 20", "start_mode": "immediate", "end_mode": "manual",
        "allocation_mode": "pro_rata", "fixing_rule": "last"}  # fmt: skip
HX = {"HX-Request": "true"}


@pytest.fixture
def org(client, users):
    client.force_login(users["org"])
    return client


def label_of(page: str, field: str) -> str:
    """The form's <label> holding the field named `field` (its error is said there), unescaped."""
    for label in re.findall(r"<label[^>]*>.*?</label>", page, flags=re.S):
        if f'name="{field}"' in label:
            return html.unescape(label)
    raise AssertionError(f"no field {field}")


def refused_inline(client, form: dict, field: str, message: str) -> None:
    before = Event.objects.count()
    page = client.post("/", form, headers=HX)
    text = page.content.decode()
    label = label_of(text, field)
    assert 'class="has-error' in label and f'<span class="error">{message}</span>' in label, label
    assert Event.objects.count() == before and not Session.objects.filter(id=form["session_id"]).exists()


@pytest.mark.parametrize(
    ("typed", "rule"),
    [
        ({"fixing_rule": "vwap", "fixing_window": "300", "fixing_after": "30", "fixing_min_volume": "1000,5",
          "fixing_source": " lse "},
         {"rule": "vwap", "window": 300, "after": 30, "min_volume": "1000.5", "source": "lse"}),
        ({"fixing_rule": "close", "fixing_source": "lse"}, {"rule": "close", "source": "lse"}),
        ({"fixing_rule": "median"}, {"rule": "median", "window": 60}),
        # a window's settings left typed under last (hidden on the page) say nothing to it
        ({"fixing_rule": "last", "fixing_window": "30", "fixing_after": "5", "fixing_min_volume": "9"}, {"rule": "last"}),
    ],
    ids=["vwap", "close", "median", "last"],
)  # fmt: skip
def test_the_simple_choice_makes_the_rule(org, typed, rule):
    response = org.post("/", FORM | typed)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Session.objects.get(id="f1").fixing_rule == rule


@pytest.mark.parametrize("rule", [FALLBACK, COMPOSITE], ids=["fallback", "composite"])
def test_the_rule_as_json_takes_a_composite_or_a_ladder(org, rule):
    import json

    assert org.post("/", FORM | {"fixing_rule": "median", "fixing_json": json.dumps(rule)}).status_code == 302
    assert Session.objects.get(id="f1").fixing_rule == validate_rule(rule)


@pytest.mark.parametrize("rule", BAD.values(), ids=BAD.keys())
def test_a_bad_rule_as_json_is_said_beside_the_field_and_nothing_is_written(org, rule):
    import json

    with pytest.raises(InvalidRule) as checker:
        validate_rule(rule)
    refused_inline(org, FORM | {"fixing_json": json.dumps(rule)}, "fixing_json", str(checker.value))


@pytest.mark.parametrize(
    ("typed", "field", "message"),
    [
        ({"fixing_json": '{"rule" "last"}'}, "fixing_json",
         "The rule is not valid JSON: Expecting ':' delimiter (line 1, column 9)"),
        ({"fixing_json": '{"rule": NaN}'}, "fixing_json", "The rule is not valid JSON: NaN is not a JSON number"),
        ({"fixing_rule": "vwap", "fixing_after": "x"}, "fixing_after",
         "The window after t2 must be a whole number of seconds from 0 to 86,400, not 'x'"),
        ({"fixing_rule": "vwap", "fixing_min_volume": "abc"}, "fixing_min_volume",
         "The least volume must be a number, not 'abc' (digits 0-9 with an optional decimal point, e.g. 2.5)"),
        ({"fixing_rule": "vwap", "fixing_min_volume": "2000000000"}, "fixing_min_volume",
         "The least volume is too large (at most 1,000,000,000)"),
        ({"fixing_rule": "close", "fixing_source": "x" * 64 + "y"}, "fixing_source",
         "Ensure this value has at most 64 characters (it has 65)."),
        ({"fixing_rule": "twap", "fixing_window": "0"}, "fixing_window",
         "The fixing window must be a whole number from 1 to 86,400"),
    ],
    ids=["json", "constant", "after", "volume text", "volume huge", "source long", "window 0"],
)  # fmt: skip
def test_a_bad_simple_setting_is_said_beside_its_own_field(org, typed, field, message):
    refused_inline(org, FORM | typed, field, message)


def test_the_admin_form_takes_the_rule_as_json_and_refuses_a_bad_one_inline(client, users):
    import json

    org = users["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    client.force_login(org)
    add = reverse("admin:markets_session_add")
    bad = client.post(add, FORM | {"fixing_json": json.dumps({"rule": "fallback", "tiers": []})})
    assert bad.status_code == 200 and "A fallback rule needs a list of 1 to 8 tiers" in bad.content.decode()
    assert not Session.objects.exists()
    assert client.post(add, FORM | {"fixing_json": json.dumps(FALLBACK)}).status_code == 302
    assert Session.objects.get().fixing_rule == validate_rule(FALLBACK)


def test_the_admin_says_the_rule_in_words_and_shows_the_fixing_record(client, users):
    org = users["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    timed(users, FALLBACK | {"tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}]})
    put("fix", -100, everywhere(100), 40)
    clock.set_time(T2)
    client.force_login(org)
    change = reverse("admin:markets_session_change", args=["fix"])
    before = html.unescape(client.get(change).content.decode())
    assert "the VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, the last price" in before
    assert "not settled yet" in before
    services.settle_session(None, "fix")
    page = html.unescape(client.get(change).content.decode())
    rows = re.findall(r"<tr><td>(NVDA)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", page)
    assert rows == [("NVDA", "100.000000", "1", "last", "tier 0 vwap: vwap: volume 40 in the window, 1000 needed")]
    assert "40.000000" in page and "window 300 s before, 0 s after" in page

    Settlement.objects.update(fixing={"rule": {"rule": "manual"}, "at": None, "ticks": {}, "source": "manual"})
    manual = html.unescape(client.get(change).content.decode())
    assert "prices given by hand at the settlement (no fixing rule) (manual; no fixing instant)" in manual
