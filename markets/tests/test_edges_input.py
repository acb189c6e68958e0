"""The edges an audit found in reading input, each refused with its own code and nothing written: leg names
that only look like ASCII ones, a JSON key given twice, numbers with line breaks or zeros past the scale,
lifetimes read by int(), `"allocation": null`; and the one leniency a form has: a decimal comma."""

from __future__ import annotations

import datetime as dt
import html
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import create_demo
from ledger.models import Event
from markets import services, tokens
from markets.models import RFQ, Invite, Quote, Session
from markets.tests.test_api import Api, assert_error
from oracle import sources, units

pytestmark = pytest.mark.django_db

KELVIN_KO = "\u212aO"  # KELVIN SIGN + O: casefold() makes it "ko"
LONG_S_MSFT = "M\u017fFT"  # LATIN SMALL LETTER LONG S: casefold() makes it "s"
ST_LIGATURE = "\ufb06"  # LATIN SMALL LIGATURE ST: casefold() makes it "st"
PRICES = {"KO": "60.1", "MSFT": "410.2", "ST": "12.5"}


@pytest.fixture
def api(client, users):
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


@pytest.fixture
def lookalikes(users):
    """An open session whose legs have ASCII look-alikes: KO, MSFT, ST."""
    return create_demo(users, "looks", legs=["KO", "MSFT", "ST"], q=[30, 30, 30])


def refused(response, status: int, code: str) -> dict:
    before = Event.objects.count(), RFQ.objects.count(), Quote.objects.count(), Invite.objects.count()
    body = assert_error(response, status, code)
    assert (Event.objects.count(), RFQ.objects.count(), Quote.objects.count(), Invite.objects.count()) == before
    return body


# ---------------------------------------------------------------- leg names


@pytest.mark.parametrize("name", [KELVIN_KO, LONG_S_MSFT, ST_LIGATURE, "KO\u00a0", "\u2003MSFT", "K\u200bO"])
def test_a_look_alike_of_a_leg_is_refused_not_folded_into_it(api, lookalikes, name):
    body = refused(
        api.post("/sessions/looks/rfq", {"give_leg": name, "get_leg": "ST", "quantity": 1}), 422, "invalid_leg_name"
    )
    assert "leg names are ASCII" in body["message"] and "U+" in body["message"]
    body = refused(
        api.post("/sessions/looks/settle", {"prices": {name: "1"} | PRICES}, who="org"), 422, "invalid_leg_name"
    )
    assert Session.objects.get(id="looks").status == "open"


def test_the_floor_form_refuses_a_look_alike_inline(client, users, lookalikes):
    client.force_login(users["alice"])
    page = client.post(
        "/sessions/looks/rfq", {"give_leg": KELVIN_KO, "get_leg": "ST", "quantity": "1"}, headers={"HX-Request": "true"}
    )
    assert page.status_code == 200 and "U+212A KELVIN SIGN" in page.content.decode()
    assert RFQ.objects.count() == 0


@pytest.mark.parametrize("legs", [["GOLD\u00a03m", "GOLD 1y"], ["GOLD 3m", "GOLD\u20031y"], [f"{KELVIN_KO}X", "Y"]])
def test_a_session_cannot_be_created_with_unicode_spaces_or_look_alikes_in_its_legs(api, users, client, legs):
    body = refused(
        api.post("/sessions", {"session_id": "g", "legs": legs, "q": [1, 1]}, who="org"), 422, "invalid_legs"
    )
    assert "leg names are ASCII" in body["message"]
    client.force_login(users["org"])
    form = {"session_id": "g", "legs": ", ".join(legs), "q": "1, 1", "start_mode": "immediate",
            "end_mode": "manual", "allocation_mode": "pro_rata", "fixing_rule": "last"}  # fmt: skip
    page = client.post("/", form, headers={"HX-Request": "true"})
    assert "leg names are ASCII" in page.content.decode()
    assert not Session.objects.filter(id="g").exists()


def test_names_match_ignoring_ascii_case_and_blanks_only():
    assert units.name_key(" gold \t 3M ") == units.name_key("GOLD 3m") == "gold 3m"
    assert units.name_key(KELVIN_KO) != units.name_key("KO")
    assert units.name_key(LONG_S_MSFT) != units.name_key("MSFT")
    assert units.name_key("GOLD\u00a03m") != units.name_key("GOLD 3m")


def test_a_csv_column_that_only_looks_like_a_leg_is_refused(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(f"ts,{KELVIN_KO},MSFT\n2030-01-01T00:00:00Z,60,400\n", encoding="utf-8")
    with pytest.raises(
        sources.ReplayError, match=re.escape(f"1:2: column {KELVIN_KO!r} holds '\u212a' (U+212A KELVIN")
    ):
        sources.load_replay_csv(path, ["KO", "MSFT"])


# ---------------------------------------------------------------- a JSON key twice


@pytest.mark.parametrize(
    "path, who, raw",
    [
        ("/sessions/demo/settle", "org",
         '{"prices": {"AAPL": "1", "AAPL": "500", "NVDA": "1", "META": "1", "ORCL": "1"}}'),
        ("/sessions/demo/rfq", "alice", '{"give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1, "quantity": 50}'),
        ("/sessions/demo/open", "org", '{"allocation": {"alice": [1, 1, 1, 1], "alice": [100, 60, 80, 120]}}'),
        ("/sessions/demo/participants", "eve", '{"role": "trader", "role": "maker"}'),
        ("/sessions/demo/invites", "org", '{"role": "trader", "max_uses": 1, "max_uses": 30}'),
        ("/sessions/demo/invites/bulk", "org", '{"names": ["Ann"], "names": ["Ben", "Cy"]}'),
        ("/sessions", "org", '{"session_id": "a", "session_id": "b", "legs": ["X", "Y"], "q": [1, 1]}'),
        ("/sessions/demo/pause", "org", '{"reason": "a", "reason": "b"}'),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused_in_every_body(api, users, path, who, raw):
    create_demo(users, open_it=path.endswith(("settle", "rfq", "pause")))
    body = refused(api.post(path, raw=raw, who=who), 400, "duplicate_key")
    assert "twice in one object" in body["message"]
    # With an Idempotency-Key the refusal is the same, and a retry with the key gets it again.
    refused(api.post(path, raw=raw, who=who, **{"Idempotency-Key": "k1"}), 400, "duplicate_key")
    retried = api.post(path, raw=raw, who=who, **{"Idempotency-Key": "k1"})
    assert retried["Idempotent-Replayed"] == "true" and retried.json()["code"] == "duplicate_key"


def test_a_quote_body_with_a_key_twice_is_refused(api, demo, users):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    refused(api.post(f"/rfq/{rfq.id}/quote", raw='{"rate": 0.62, "rate": 99}', who="mm"), 400, "duplicate_key")
    assert api.post(f"/rfq/{rfq.id}/quote", {"rate": "0.62"}, who="mm").status_code == 201


def test_a_malformed_body_is_still_malformed_json(api, demo):
    assert_error(api.post("/sessions/demo/rfq", raw='{"give_leg": '), 400, "malformed_json")


def test_open_with_a_null_allocation_is_refused_not_pro_rata(api, users):
    create_demo(users, open_it=False)
    body = refused(api.post("/sessions/demo/open", {"allocation": None}, who="org"), 422, "invalid_request")
    assert "allocation: must map each trader and maker" in body["message"]
    assert Session.objects.get(id="demo").status == "created"
    assert api.post("/sessions/demo/open", {}, who="org").status_code == 200  # the key left out: pro rata


# ---------------------------------------------------------------- numbers: one reader


@pytest.mark.parametrize("text", ["5\n", "\n5", "5\r\n", "\r5", "0.0000010", "10e-7", "1.0000000"])
def test_line_breaks_and_zeros_past_the_scale_are_not_numbers(api, demo, client, users, text):
    body = refused(
        api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": text}), 422, "invalid_number"
    )
    assert "quantity" in body["message"].lower()
    client.force_login(users["alice"])
    page = client.post(
        "/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": text}, headers={"HX-Request": "true"}
    )
    assert "Quantity " in page.content.decode() and RFQ.objects.count() == 0


def test_spaces_and_tabs_around_a_number_are_fine(api, demo):
    created = api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": " \t2.500000 "})
    assert created.status_code == 201 and created.json()["quantity"] == "2.500000"


@pytest.mark.parametrize("ttl", ["\u0661\u0660", "1_0", "+5", "60\n", "2.5", "0x10", "\uff16\uff10"])
def test_a_quote_lifetime_is_read_by_the_one_reader(api, demo, client, users, ttl):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    client.force_login(users["mm"])
    page = client.post(f"/rfq/{rfq.id}/quote", {"rate": "0.62", "ttl": ttl}, headers={"HX-Request": "true"})
    assert "lifetime must be a whole number of seconds from 1 to 86,400" in page.content.decode()
    assert Quote.objects.count() == 0
    refused(api.post(f"/rfq/{rfq.id}/quote", {"rate": "0.62", "ttl_seconds": ttl}, who="mm"), 422, "invalid_number")
    assert client.post(f"/rfq/{rfq.id}/quote", {"rate": "0.62", "ttl": " 10 "}, headers={"HX-Request": "true"})
    quote = Quote.objects.get()
    assert quote.expires_at - quote.created_at == dt.timedelta(seconds=10)


@pytest.mark.parametrize("window", ["1_0", "\u0661\u0660", "+5", "2.5"])
def test_the_fixing_window_is_read_by_the_one_reader(client, users, window):
    client.force_login(users["org"])
    form = {"session_id": "w", "legs": "A, B", "q": "1, 1", "start_mode": "immediate", "end_mode": "manual",
            "allocation_mode": "pro_rata", "fixing_rule": "twap", "fixing_window": window}  # fmt: skip
    page = client.post("/", form, headers={"HX-Request": "true"})
    assert "The fixing window must be a whole number from 1 to 86,400" in page.content.decode()
    assert not Session.objects.filter(id="w").exists()
    assert client.post("/", form | {"fixing_window": " 90 "}).status_code == 302
    assert Session.objects.get(id="w").fixing_rule == {"rule": "twap", "window": 90}


def test_the_settle_command_reads_prices_by_the_one_reader(demo):
    prices = ["--price=AAPL=190.1\n", "--price=NVDA=480.2", "--price=META=350", "--price=ORCL=104.3"]
    with pytest.raises(CommandError, match="Price of AAPL must be a number"):
        call_command("settle", "demo", *prices, stdout=StringIO())
    with pytest.raises(CommandError, match="U\\+00A0 NO-BREAK SPACE"):
        call_command("settle", "demo", "--price=AAPL\u00a0=190.1", *prices[1:], stdout=StringIO())
    assert Session.objects.get(id="demo").status == "open"


# ---------------------------------------------------------------- a decimal comma, in forms only


def test_the_floor_forms_read_a_decimal_comma(client, users, demo):
    client.force_login(users["alice"])
    client.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1,5"})
    rfq = RFQ.objects.get()
    assert rfq.quantity == 1_500_000
    client.force_login(users["mm"])
    client.post(f"/rfq/{rfq.id}/quote", {"rate": " 0,62 ", "ttl": "60"})
    assert Quote.objects.get().rate == 62_000_000


@pytest.mark.parametrize(
    "text, says",
    [
        ("1,000", "is ambiguous as '1,000': write 1000 (no thousands separators) or 1.000"),
        ("12,500", "is ambiguous as '12,500'"),
        ("1,000.5", "must be a number, not '1,000.5' (one decimal point or comma and no thousands separators"),
        ("1.000,5", "must be a number, not '1.000,5'"),
        ("1,5,0", "must be a number, not '1,5,0'"),
        (",5", "must be a number, not ',5'"),
    ],
)
def test_an_ambiguous_comma_is_refused_inline(client, users, demo, text, says):
    client.force_login(users["alice"])
    page = client.post(
        "/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": text}, headers={"HX-Request": "true"}
    )
    shown = html.unescape(page.content.decode())
    assert f"Quantity {says}" in shown and f'value="{text}"' in shown  # the form keeps what was typed
    assert RFQ.objects.count() == 0


def test_the_api_stays_strict_about_commas(api, demo):
    refused(api.post("/sessions/demo/rfq", {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "1,5"}), 422,
            "invalid_number")  # fmt: skip


def session_form(**fields) -> dict:
    return {"session_id": "c", "legs": "A, B", "start_mode": "immediate", "end_mode": "manual",
            "allocation_mode": "pro_rata", "fixing_rule": "last"} | fields  # fmt: skip


@pytest.mark.parametrize(
    "typed, q",
    [
        ("1,5; 2,25", [1_500_000, 2_250_000]),
        ("1,5 ;\n2", [1_500_000, 2_000_000]),
        ("100, 60", [100_000_000, 60_000_000]),  # commas separate values when no semicolon is typed
        ("100 60", [100_000_000, 60_000_000]),
        ("0.5;1.5", [500_000, 1_500_000]),
    ],
)
def test_the_basket_takes_decimal_commas_separated_by_semicolons(client, users, typed, q):
    client.force_login(users["org"])
    assert client.post("/", session_form(q=typed)).status_code == 302
    assert Session.objects.get(id="c").q == q


@pytest.mark.parametrize(
    "typed, says",
    [
        ("1,5, 2,5", "The basket q has 4 entries for 2 legs. For decimal commas, separate the values with semicolons"),
        ("1,000; 2", "q for A is ambiguous as '1,000'"),
        ("1\u00a0; 2", "q for A must be a number"),
    ],
)
def test_a_basket_the_form_cannot_read_says_how_to_write_it(client, users, typed, says):
    client.force_login(users["org"])
    page = client.post("/", session_form(q=typed), headers={"HX-Request": "true"})
    assert says in html.unescape(page.content.decode())
    assert not Session.objects.filter(id="c").exists()
