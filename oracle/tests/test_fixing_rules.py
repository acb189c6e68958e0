"""A session's fixing rule, checked into its one written form, refused with what is wrong, and said in words."""

from __future__ import annotations

import pytest

from oracle.fixing_rules import InvalidRule, describe, reach, validate_rule

LADDER = {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}]}
COMPOSITE = {
    "rule": "composite",
    "inner": {"rule": "median", "window": 60},
    "sources": ["a", "b", "c"],
    "min_sources": 2,
    "max_deviation": "0.02",
}


def test_the_issues_examples_are_kept_as_written():
    assert validate_rule(LADDER) == LADDER
    assert validate_rule(COMPOSITE) == COMPOSITE
    assert validate_rule(None) == {"rule": "last"}
    assert validate_rule({"rule": "vwap", "window": "300", "after": 0, "min_volume": "1000.50"}) == {
        "rule": "vwap",
        "window": 300,
        "min_volume": "1000.5",
    }


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ({"rule": "vwop"}, "Unknown fixing rule 'vwop'"),
        ({"rule": "median", "window": 0}, "The fixing window must be a whole number of seconds from 1 to 86,400"),
        ({"rule": "twap", "after": -5}, "The window after t2 must be a whole number of seconds"),
        ({"rule": "last", "min_ticks": 3}, "The last rule has no 'min_ticks'"),
        ({"rule": "fallback", "tiers": []}, "A fallback rule needs a list of 1 to 8 tiers"),
        ({"rule": "fallback", "tiers": [{"rule": "fallback", "tiers": []}]}, "Tier 1: Unknown fixing rule 'fallback'"),
        ({"rule": "composite", "sources": ["a"]}, "A composite needs an inner rule"),
        ({**COMPOSITE, "min_sources": 4}, "min_sources must be a whole number from 1 to 3"),
        ({**COMPOSITE, "max_deviation": "abc"}, "max_deviation must be a number"),
        ({**COMPOSITE, "max_deviation": "1.5"}, "max_deviation must be a fraction above 0, at most 1"),
        ({**COMPOSITE, "sources": ["a", "a"]}, "A composite names each source once"),
        ({"rule": "close", "source": "a\x07b"}, "A source is a name of 1 to 64 printable characters"),
        ("last", "The fixing rule must be an object"),
    ],
)
def test_a_bad_rule_is_refused_saying_what_is_wrong(spec, said):
    with pytest.raises(InvalidRule, match=None) as info:
        validate_rule(spec)
    assert said in str(info.value)


def test_the_rule_in_words_and_how_far_it_looks():
    assert describe(validate_rule(LADDER)) == (
        "the VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, the last price at or before t2"
    )
    assert describe(validate_rule(COMPOSITE)) == (
        "the median across a, b, c of each one's median price over the 60 s before t2, at least 2 sources, "
        "dropping those more than 2% from the median"
    )
    centred = validate_rule({"rule": "median", "window": 150, "after": 150})
    assert describe(centred) == "the median price over 150 s before to 150 s after t2"
    assert reach(centred) == (150, 150) and reach(validate_rule(LADDER)) == (300, 0)
