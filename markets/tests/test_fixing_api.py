"""The fixing rule and the fixing record at the JSON API: `POST /sessions` takes the whole grammar (fallback,
composite) and refuses a bad rule with 422 `invalid_fixing_rule` and the checker's own message, writing
nothing; the session read says the rule in words; `GET .../payouts` shows the record per leg in price and
units text, for an oracle fixing, a record from before per-leg records, and a manual settlement."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ledger import clock
from ledger.models import Event
from markets import services, tokens
from markets.models import Session, Settlement
from markets.tests.test_fixings import T1, T2, everywhere, put, timed
from oracle.fixing_rules import InvalidRule, validate_rule
from oracle.tests.test_fixing_rules import COMPOSITE, LADDER

pytestmark = pytest.mark.django_db

BASE = {"session_id": "fx", "legs": ["AAPL", "NVDA", "META", "ORCL"], "q": [100, 60, 80, 120]}
FALLBACK = LADDER  # the two examples


@pytest.fixture
def api(client, users):
    keys = {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()}

    def call(method: str, path: str, body=None, who: str = "org", raw: str | None = None):
        headers = {"Authorization": f"Bearer {keys[who]}"}
        if method == "get":
            return client.get(f"/api/v1{path}", headers=headers)
        data = raw if raw is not None else json.dumps(body)
        return client.post(f"/api/v1{path}", data=data, content_type="application/json", headers=headers)

    return call


@pytest.mark.parametrize("rule", [FALLBACK, COMPOSITE], ids=["fallback", "composite"])
def test_the_whole_grammar_is_taken_and_the_session_says_it_in_words(api, users, rule):
    created = api("post", "/sessions", BASE | {"fixing_rule": rule})
    assert created.status_code == 201, created.content
    read = api("get", "/sessions/fx", who="org").json()
    assert read["fixing_rule"] == validate_rule(rule) == Session.objects.get().fixing_rule
    words = {
        "fallback": "the VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, "
        "the last price at or before t2",
        "composite": "the median across a, b, c of each one's median price over the 60 s before t2, "
        "at least 2 sources, dropping those more than 2% from the median",
    }
    assert read["fixing_described"] == created.json()["fixing_described"] == words[rule["rule"]]


def test_a_json_number_deviation_is_read_exactly(api, users):
    raw = json.dumps(BASE | {"fixing_rule": COMPOSITE}).replace('"0.02"', "0.020")
    assert api("post", "/sessions", raw=raw).status_code == 201
    assert Session.objects.get().fixing_rule["max_deviation"] == "0.02"


BAD = {
    "unknown rule": {"rule": "mean"},
    "window 0": {"rule": "twap", "window": 0},
    "composite without inner": {"rule": "composite", "sources": ["a", "b"]},
    "fallback with 0 tiers": {"rule": "fallback", "tiers": []},
    "max_deviation abc": COMPOSITE | {"max_deviation": "abc"},
    "min_sources above the sources": COMPOSITE | {"min_sources": 4},
    "a tier's bad window": {"rule": "fallback", "tiers": [{"rule": "vwap", "window": -5}]},
    "not an object": "last",
    "close without a source's name": {"rule": "close", "source": ""},
}


@pytest.mark.parametrize("rule", BAD.values(), ids=BAD.keys())
def test_a_bad_rule_is_refused_with_the_checkers_message_and_nothing_is_written(api, users, rule):
    with pytest.raises(InvalidRule) as checker:
        validate_rule(rule)
    before = Event.objects.count()
    response = api("post", "/sessions", BASE | {"fixing_rule": rule})
    assert response.status_code == 422, response.content
    assert response.json() == {"code": "invalid_fixing_rule", "message": str(checker.value)}
    assert Event.objects.count() == before and not Session.objects.exists()


def test_a_rule_holding_a_nul_character_is_refused_before_the_database(api, users):
    response = api("post", "/sessions", BASE | {"fixing_rule": {"rule": "close", "source": "a\x00b"}})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_fixing_rule" and "NUL" in response.json()["message"]
    assert not Session.objects.exists()


def test_the_openapi_schema_describes_the_grammar_with_the_two_examples(client):
    schema = client.get("/api/v1/openapi.json").json()
    body = schema["components"]["schemas"]["SessionCreateIn"]["properties"]["fixing_rule"]
    assert body["examples"][0] == FALLBACK and body["examples"][1] == COMPOSITE
    assert {"last", "close", "median", "twap", "vwap", "composite", "fallback"} == set(
        body["properties"]["rule"]["enum"]
    )
    leg = schema["components"]["schemas"]["FixingLegOut"]["properties"]
    assert {"value", "tier", "rule", "passed", "used", "sources", "volume", "by_source", "dropped"} <= set(leg)


def test_the_payouts_show_a_ladders_record_in_price_and_units_text(api, users):
    timed(users, FALLBACK | {"tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "twap",
                                                                                               "window": 60}]})  # fmt: skip
    put("fix", -100, everywhere(100), 40.5)
    put("fix", -30, everywhere(110))
    clock.set_time(T2)
    settled = api("post", "/sessions/fix/settle")
    assert settled.status_code == 200, settled.content
    fixing = api("get", "/sessions/fix/payouts", who="alice").json()["fixing"]
    assert fixing == settled.json()["fixing"]
    assert fixing["source"] == "oracle" and fixing["detailed"] is True
    assert fixing["described"].startswith("the VWAP over the 300 s before t2 (at least 1000 traded); if that")
    assert fixing["window"] == {"before": 300, "after": 0}
    assert fixing["at"] == fixing["end"] == "2030-03-04T16:00:00+00:00"
    assert list(fixing["legs"]) == ["AAPL", "NVDA", "META", "ORCL"]
    leg = fixing["legs"]["NVDA"]
    assert leg["value"] == "105.000000" and leg["tier"] == 1 and leg["rule"] == "twap"
    assert leg["passed"] == [{"tier": 0, "rule": "vwap", "reason": "vwap: volume 40.5 in the window, 1000 needed"}]
    assert len(leg["used"]) == 2 and leg["used"] == fixing["ticks"]["NVDA"] and leg["read"] == leg["used"]
    assert leg["sources"] == ["a"] and leg["volume"] == "40.500000"
    assert leg["by_source"] is None and leg["dropped"] is None


def test_the_payouts_show_a_composites_sources_kept_dropped_and_refused(api, users):
    timed(users, COMPOSITE | {"sources": ["a", "b", "c", "d"]})
    put("fix", -20, everywhere(100), source="a")
    put("fix", -15, everywhere(101), source="b")
    put("fix", -10, everywhere(150), source="c")
    clock.set_time(T2)
    assert api("post", "/sessions/fix/settle").status_code == 200
    leg = api("get", "/sessions/fix/payouts").json()["fixing"]["legs"]["META"]
    assert leg["value"] == "100.000000" and leg["tier"] == 0 and leg["rule"] == "composite"
    assert leg["by_source"] == {"a": "100.000000", "b": "101.000000"}
    assert leg["dropped"] == {"c": "150.000000"}
    assert leg["refused"] == {"d": "median: 0 ticks in the window, 1 needed"}
    assert leg["volume"] is None


def test_a_record_from_before_per_leg_records_and_a_manual_settlement_still_read(api, users):
    timed(users, {"rule": "median", "window": 60})
    put("fix", -10, everywhere(100))
    clock.set_time(T2)
    assert api("post", "/sessions/fix/settle").status_code == 200
    ticks = Settlement.objects.get().fixing["ticks"]
    old = {"rule": {"rule": "median", "window": 60}, "at": "2030-03-04T16:00:00+00:00", "ticks": ticks,
           "source": "oracle"}  # fmt: skip
    Settlement.objects.update(fixing=old)
    fixing = api("get", "/sessions/fix/payouts").json()["fixing"]
    assert fixing["detailed"] is False and fixing["end"] == fixing["at"]
    assert fixing["described"] == "the median price over the 60 s before t2"
    assert fixing["window"] == {"before": 60, "after": 0}
    assert fixing["legs"]["AAPL"] | {"used": None} == {
        "value": "100.000000", "tier": None, "rule": "median", "passed": [], "used": None, "read": None,
        "sources": [], "volume": None, "by_source": None, "dropped": None, "refused": None,
    }  # fmt: skip
    assert fixing["legs"]["AAPL"]["used"] == ticks["AAPL"]

    clock.set_time(T1)
    services.create_session(users["org"], session_id="byhand", **{k: BASE[k] for k in ("legs", "q")})
    services.join_session(users["alice"], "byhand", "trader")
    services.open_session(users["org"], "byhand")
    prices = {"AAPL": "190.1", "NVDA": "480.2", "META": "350", "ORCL": "104.3"}
    assert api("post", "/sessions/byhand/settle", {"prices": prices}).status_code == 200
    manual = api("get", "/sessions/byhand/payouts").json()["fixing"]
    assert manual["source"] == "manual" and manual["at"] is None and manual["window"] is None
    assert manual["described"] == "prices given by hand at the settlement (no fixing rule)"
    assert manual["legs"]["AAPL"]["value"] == "190.100000" and manual["legs"]["AAPL"]["rule"] == "manual"
    assert dt.datetime.fromisoformat(api("get", "/sessions/byhand").json()["settled_at"]).tzinfo is not None
