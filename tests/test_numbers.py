"""rag.numbers: a number's value, whatever its form, so a right answer is not dropped for
writing it another way and a wrong one is not kept."""

from __future__ import annotations

import pytest

from rag.numbers import unmatched, values_in


@pytest.mark.parametrize(
    ("claim", "passage"),
    [
        ("callers hang up after sixty-five seconds", "callers hang up after 65 seconds"),
        ("a pre-tax profit of 15.4 million pounds", "Pre-tax profit was £15.4m ($29.4m)."),
        ("Two million pensioners live in poverty", "2m pensioners live in poverty"),
        ("seventy per cent of sales", "accounting for 70% of sales"),
        ("Lenovo has more than 25% of the market", "with more than a quarter of the market"),
        ("She spent 21 days learning Hindi", "She spent three weeks learning Hindi"),
        ("Thirty-nine of the sixty-five nations", "39 nations out of 65"),
        ("a seven thousand dollar film", "a $7,000 (£3,650) film"),
        ("Fletcher was ninety-one", "Fletcher has died aged 91"),
        ("28 people were arrested", "Twenty-eight people have been arrested"),
    ],
)
def test_the_same_value_in_another_form_matches(claim, passage):
    assert unmatched(claim, passage) == []


@pytest.mark.parametrize(
    ("claim", "passage", "missing"),
    [
        ("profit of £28m", "profit of £28.7m", ["28m"]),
        ("sixty-six seconds", "65 seconds", ["sixty-six"]),
        ("3 million pensioners", "2m pensioners", ["3"]),
        ("a rise of 40%", "a quarter of the market rose", ["40"]),
    ],
)
def test_another_value_does_not_match(claim, passage, missing):
    assert unmatched(claim, passage) == missing


def test_values_of_scaled_numbers_include_the_mantissa_and_the_whole():
    assert {15.4, 15_400_000} <= values_in("£15.4m")
    assert values_in("the first time, one of them") == {1.0}
    assert unmatched("for the first time, one of the firms", "a firm") == []
